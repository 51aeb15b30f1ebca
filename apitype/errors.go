package apitype

import "net/http"

// Error types the API answers with: a stable name (Lambda's, where Wisp
// speaks Lambda's API) that a caller can test, whatever the message says.
// ErrorStatus gives each its HTTP status.
const (
	TypeInvalidParameterValue = "InvalidParameterValueException"
	TypeInvalidCode           = "InvalidCodeException"
	TypeInvalidRequestContent = "InvalidRequestContentException"
	TypeUnauthorized          = "UnauthorizedException"
	TypeAccessDenied          = "AccessDeniedException"
	// The Lambda API's refusals of a request's credentials.
	TypeMissingAuthenticationToken = "MissingAuthenticationTokenException"
	TypeInvalidSignature           = "InvalidSignatureException"
	TypeUnrecognizedClient         = "UnrecognizedClientException"
	TypeResourceNotFound           = "ResourceNotFoundException"
	TypeResourceConflict           = "ResourceConflictException"
	TypePreconditionFailed         = "PreconditionFailedException"
	TypeRequestTooLarge            = "RequestTooLargeException"
	TypeCodeTooLarge               = "CodeTooLargeException"
	TypeUnsupportedMediaType       = "UnsupportedMediaTypeException"
	TypeTooManyRequests            = "TooManyRequestsException"
	TypeService                    = "ServiceException"
	TypeServiceUnavailable         = "ServiceUnavailableException"
	TypeStorageFull                = "StorageFullException"
	TypeTopicLimitExceeded         = "TopicLimitExceededException"
)

// errorStatus is each error type's HTTP status.
var errorStatus = map[string]int{
	TypeInvalidParameterValue:      http.StatusBadRequest,
	TypeInvalidCode:                http.StatusBadRequest,
	TypeInvalidRequestContent:      http.StatusBadRequest,
	TypeUnauthorized:               http.StatusUnauthorized,
	TypeAccessDenied:               http.StatusForbidden,
	TypeMissingAuthenticationToken: http.StatusForbidden,
	TypeInvalidSignature:           http.StatusForbidden,
	TypeUnrecognizedClient:         http.StatusForbidden,
	TypeResourceNotFound:           http.StatusNotFound,
	TypeResourceConflict:           http.StatusConflict,
	TypePreconditionFailed:         http.StatusConflict,
	TypeRequestTooLarge:            http.StatusRequestEntityTooLarge,
	TypeCodeTooLarge:               http.StatusRequestEntityTooLarge,
	TypeUnsupportedMediaType:       http.StatusUnsupportedMediaType,
	TypeTooManyRequests:            http.StatusTooManyRequests,
	TypeService:                    http.StatusInternalServerError,
	TypeServiceUnavailable:         http.StatusServiceUnavailable,
	TypeStorageFull:                http.StatusInsufficientStorage,
	TypeTopicLimitExceeded:         http.StatusInsufficientStorage,
}

// ErrorStatus is the HTTP status the API answers an error type with: 500
// for a type it does not know. ServiceException alone comes with other
// statuses too: 501 for a part the node does not run, and 503 from the
// Lambda API when the node cannot serve now.
func ErrorStatus(typ string) int {
	if s, ok := errorStatus[typ]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Error is the body of an error answer of the control API (/v1).
type Error struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// LambdaError is the body of an error answer of the Lambda Invoke API and
// of function URLs, as AWS writes it; the type is also in the
// X-Amzn-ErrorType header.
type LambdaError struct {
	// Reason says why a 429 refused a call: a throttle (Lambda's reasons)
	// or ReasonSpendCap.
	Reason  string `json:"Reason,omitempty"`
	Type    string `json:"__type"`
	Message string `json:"message"`
}
