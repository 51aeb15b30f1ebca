package s3

import (
	"encoding/xml"
	"strings"
)

// CORSConfiguration is a bucket's CORS rules: PutBucketCors' body and
// GetBucketCors' answer.
type CORSConfiguration struct {
	XMLName xml.Name   `xml:"CORSConfiguration"`
	Rules   []CORSRule `xml:"CORSRule"`
}

// CORSRule is one rule of a CORSConfiguration.
type CORSRule struct {
	ID             string   `xml:"ID,omitempty"`
	AllowedOrigins []string `xml:"AllowedOrigin"`
	AllowedMethods []string `xml:"AllowedMethod"`
	AllowedHeaders []string `xml:"AllowedHeader,omitempty"`
	MaxAgeSeconds  *int     `xml:"MaxAgeSeconds,omitempty"`
	ExposeHeaders  []string `xml:"ExposeHeader,omitempty"`
}

// maxCORSRules is S3's limit of rules in one configuration.
const maxCORSRules = 100

// MarshalXML writes c in S3's namespace; a request body may come without
// one, so decoding takes any.
func (c CORSConfiguration) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	type plain struct {
		Rules []CORSRule `xml:"CORSRule"`
	}
	start.Name = xml.Name{Space: Namespace, Local: "CORSConfiguration"}
	start.Attr = nil
	return e.EncodeElement(plain{c.Rules}, start)
}

// Validate returns S3's error for a configuration PutBucketCors refuses:
// no rules or too many, a rule without origin or method, an unknown method,
// or an origin or allowed header with more than one wildcard.
func (c CORSConfiguration) Validate() *Error {
	if len(c.Rules) == 0 || len(c.Rules) > maxCORSRules {
		return NewError(MalformedXML, "")
	}
	for _, r := range c.Rules {
		if len(r.AllowedOrigins) == 0 || len(r.AllowedMethods) == 0 {
			return NewError(MalformedXML, "")
		}
		for _, m := range r.AllowedMethods {
			switch m {
			case "GET", "PUT", "POST", "DELETE", "HEAD":
			default:
				return NewError(InvalidRequest, "Found unsupported HTTP method in CORS config. Unsupported method is "+m)
			}
		}
		for _, o := range r.AllowedOrigins {
			if strings.Count(o, "*") > 1 {
				return NewError(InvalidRequest, `AllowedOrigin "`+o+`" can not have more than one wildcard.`)
			}
		}
		for _, h := range r.AllowedHeaders {
			if strings.Count(h, "*") > 1 {
				return NewError(InvalidRequest, `AllowedHeader "`+h+`" can not have more than one wildcard.`)
			}
		}
	}
	return nil
}

// Match returns the first rule that allows a request from origin with
// method and, for a preflight, the requested headers; ok is false when none
// does, and S3 then answers a preflight with 403.
func (c CORSConfiguration) Match(origin, method string, headers []string) (rule CORSRule, ok bool) {
	for _, r := range c.Rules {
		if r.allows(origin, method, headers) {
			return r, true
		}
	}
	return CORSRule{}, false
}

func (r CORSRule) allows(origin, method string, headers []string) bool {
	if !anyWildcardMatch(r.AllowedOrigins, origin, false) {
		return false
	}
	methodOK := false
	for _, m := range r.AllowedMethods {
		methodOK = methodOK || m == method
	}
	if !methodOK {
		return false
	}
	for _, h := range headers {
		if h = strings.TrimSpace(h); h != "" && !anyWildcardMatch(r.AllowedHeaders, h, true) {
			return false
		}
	}
	return true
}

// anyWildcardMatch tells whether s matches one of patterns, each of which
// may hold one "*" standing for any run of characters.
func anyWildcardMatch(patterns []string, s string, foldCase bool) bool {
	if foldCase {
		s = strings.ToLower(s)
	}
	for _, p := range patterns {
		if foldCase {
			p = strings.ToLower(p)
		}
		before, after, wild := strings.Cut(p, "*")
		if !wild {
			if p == s {
				return true
			}
			continue
		}
		if len(s) >= len(before)+len(after) && strings.HasPrefix(s, before) && strings.HasSuffix(s, after) {
			return true
		}
	}
	return false
}
