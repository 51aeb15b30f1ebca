"""Wisp's Python bootstrap.

An AWS Lambda Runtime API (2018-06-01) client that imports the handler named
by _HANDLER from LAMBDA_TASK_ROOT and serves invocations one at a time, the
way AWS's Python runtime interface client (awslambdaric) does, so unmodified
Lambda handlers run here: the same handler lookup, context object, error
bodies, log line format and unbuffered stdout.

Standard library only. Where this differs from awslambdaric:
  - Responses are serialized with the json module, not simplejson: a
    decimal.Decimal is written as an int when it is integral and as a float
    otherwise (awslambdaric writes its exact digits).
  - The JSON log format (AWS_LAMBDA_LOG_FORMAT=JSON), the telemetry log fd
    and SnapStart hooks are not supported.
"""

import decimal
import http.client
import importlib
import json
import logging
import math
import os
import socket
import sys
import time
import traceback

API_PREFIX = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"

# awslambdaric writes an error's lines to stdout joined by \r, so one error
# is one line, with leading spaces turned into no-break spaces.
ERROR_LOG_LINE_TERMINATE = "\r"
ERROR_LOG_IDENT = "\u00a0"


class FaultException(Exception):
    """An error the runtime reports under a Runtime.* type."""

    MARSHAL_ERROR = "Runtime.MarshalError"
    UNMARSHAL_ERROR = "Runtime.UnmarshalError"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    LAMBDA_CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

    def __init__(self, exception_type, msg, trace=None):
        super().__init__(msg)
        self.msg = msg
        self.exception_type = exception_type
        self.trace = trace


# ---------------------------------------------------------------------------
# Runtime API client, over one keep-alive connection.


class _Connection(http.client.HTTPConnection):
    def connect(self):
        super().connect()
        # Small request/response pairs: do not let Nagle hold them back.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class RuntimeClient:
    def __init__(self, address):
        self.address = address
        self.conn = _Connection(address)
        self.used = False  # whether conn has carried a request

    def request(self, method, path, body=None, headers=None):
        """Returns (status, headers, body bytes). A request that fails on a
        reused connection the server has closed is sent once more."""
        for attempt in (0, 1):
            reused = self.used
            try:
                self.used = True
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                return resp.status, resp.headers, resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.used = False
                if attempt or not reused:
                    raise

    def wait_next_invocation(self):
        status, headers, body = self.request("GET", API_PREFIX + "/invocation/next")
        if status != 200:
            raise RuntimeError(
                "runtime API: next invocation: status {}: {!r}".format(status, body)
            )
        return headers, body

    def _post(self, path, body, headers):
        if isinstance(body, str):
            body = body.encode("utf-8")
        status, _, resp = self.request("POST", path, body, headers)
        if status < 200 or status > 299:
            sys.stderr.write(
                "wisp bootstrap: POST {}: status {}: {!r}\n".format(path, status, resp)
            )

    def post_invocation_result(self, invoke_id, result, content_type):
        self._post(
            "{}/invocation/{}/response".format(API_PREFIX, invoke_id),
            result,
            {"Content-Type": content_type},
        )

    def post_invocation_error(self, invoke_id, error_result):
        self._post(
            "{}/invocation/{}/error".format(API_PREFIX, invoke_id),
            to_json(error_result),
            {
                "Content-Type": "application/json",
                ERROR_TYPE_HEADER: error_result["errorType"],
            },
        )

    def post_init_error(self, error_result):
        self._post(
            API_PREFIX + "/init/error",
            to_json(error_result),
            {
                "Content-Type": "application/json",
                ERROR_TYPE_HEADER: error_result["errorType"],
            },
        )


# ---------------------------------------------------------------------------
# JSON


def _json_default(obj):
    if isinstance(obj, decimal.Decimal):
        if obj.is_nan():
            return math.nan
        if obj == obj.to_integral_value():
            return int(obj)
        return float(obj)
    raise TypeError(
        "Object of type {} is not JSON serializable".format(type(obj).__name__)
    )


def to_json(obj):
    return json.dumps(obj, default=_json_default)


def unmarshal_request(body, content_type):
    if content_type and not content_type.startswith("application/json"):
        return body
    try:
        return json.loads(body)
    except Exception as e:
        raise FaultException(
            FaultException.UNMARSHAL_ERROR,
            "Unable to unmarshal input: {}".format(str(e)),
            None,
        )


def marshal_response(response):
    if isinstance(response, bytes):
        return response, "application/unknown"
    try:
        return to_json(response), "application/json"
    except Exception as e:
        raise FaultException(
            FaultException.MARSHAL_ERROR,
            "Unable to marshal response: {}".format(str(e)),
            None,
        )


# ---------------------------------------------------------------------------
# The context object, as awslambdaric's LambdaContext.


class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return (
            f"{self.__class__.__name__}(["
            f"cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}"
            "])"
        )


class Client(object):
    __slots__ = [
        "installation_id",
        "app_title",
        "app_version_name",
        "app_version_code",
        "app_package_name",
    ]

    def __repr__(self):
        return (
            f"{self.__class__.__name__}(["
            f"installation_id={self.installation_id},"
            f"app_title={self.app_title},"
            f"app_version_name={self.app_version_name},"
            f"app_version_code={self.app_version_code},"
            f"app_package_name={self.app_package_name}"
            "])"
        )


class ClientContext(object):
    __slots__ = ["custom", "env", "client"]

    def __repr__(self):
        return (
            f"{self.__class__.__name__}(["
            f"custom={self.custom},"
            f"env={self.env},"
            f"client={self.client}"
            "])"
        )


def _obj_from_dict(cls, d):
    if d is None:
        return None
    obj = cls()
    for field in cls.__slots__:
        setattr(obj, field, d.get(field, None))
    return obj


class LambdaContext(object):
    def __init__(
        self,
        invoke_id,
        client_context,
        cognito_identity,
        epoch_deadline_time_in_ms,
        invoked_function_arn=None,
    ):
        self.aws_request_id = invoke_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        # A string, as in awslambdaric.
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn

        self.client_context = _obj_from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _obj_from_dict(
                Client, self.client_context.client
            )

        self.identity = _obj_from_dict(CognitoIdentity, {})
        if cognito_identity is not None:
            self.identity.cognito_identity_id = cognito_identity.get(
                "cognitoIdentityId"
            )
            self.identity.cognito_identity_pool_id = cognito_identity.get(
                "cognitoIdentityPoolId"
            )

        self._epoch_deadline_time_in_ms = epoch_deadline_time_in_ms

    def get_remaining_time_in_millis(self):
        epoch_now_in_ms = int(time.time() * 1000)
        delta_ms = self._epoch_deadline_time_in_ms - epoch_now_in_ms
        return delta_ms if delta_ms > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            f"{self.__class__.__name__}(["
            f"aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},"
            f"log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},"
            f"identity={self.identity}"
            "])"
        )


def _parse_json_header(value, name):
    try:
        return json.loads(value)
    except Exception as e:
        raise FaultException(
            FaultException.LAMBDA_CONTEXT_UNMARSHAL_ERROR,
            "Unable to parse {} JSON: {}".format(name, str(e)),
            None,
        )


# ---------------------------------------------------------------------------
# Handler loading: "module.function", where module may be a dotted or
# slashed path ("pkg.mod.fn", "pkg/mod.fn").


def get_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise FaultException(
            FaultException.MALFORMED_HANDLER_NAME,
            "Bad handler '{}': {}".format(handler, str(e)),
        )

    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise FaultException(
                FaultException.BUILT_IN_MODULE_CONFLICT,
                "Cannot use built-in module {} as a handler module".format(modname),
            )
        m = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise FaultException(
            FaultException.IMPORT_MODULE_ERROR,
            "Unable to import module '{}': {}".format(modname, str(e)),
        )
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise FaultException(
            FaultException.USER_CODE_SYNTAX_ERROR,
            "Syntax error in module '{}': {}".format(modname, str(e)),
            trace,
        )

    try:
        return getattr(m, fname)
    except AttributeError:
        raise FaultException(
            FaultException.HANDLER_NOT_FOUND,
            "Handler '{}' missing on module '{}'".format(fname, modname),
            None,
        )


# ---------------------------------------------------------------------------
# Errors


def make_error(error_message, error_type, stack_trace, invoke_id=None):
    return {
        "errorMessage": error_message if error_message else "",
        "errorType": error_type if error_type else "",
        "requestId": invoke_id if invoke_id is not None else "",
        "stackTrace": stack_trace if stack_trace else [],
    }


def _user_frames(tb):
    """The formatted traceback frames, without this bootstrap's own."""
    frames = traceback.extract_tb(tb)
    for i, frame in enumerate(frames):
        if "/bootstrap.py" not in frame.filename:
            return frames[i:]
    return frames


def build_fault_result(exc_info, invoke_id=None):
    etype, value, tb = exc_info
    return make_error(
        str(value),
        etype.__name__,
        traceback.format_list(_user_frames(tb)),
        invoke_id,
    )


def _replace_line_indentation(line, indent_char, new_indent_char):
    count = len(line) - len(line.lstrip(indent_char))
    return (new_indent_char * count) + line[count:]


def log_error(error_result):
    description = "[ERROR]"
    error_type = error_result.get("errorType")
    if error_type:
        description += " " + error_type
    error_message = error_result.get("errorMessage")
    if error_message:
        if error_type:
            description += ":"
        description += " " + error_message

    lines = [description]
    stack_trace = error_result.get("stackTrace")
    if stack_trace is not None:
        lines.append("Traceback (most recent call last):")
        for element in stack_trace:
            if element == "":
                lines.append("")
                continue
            for line in element.splitlines():
                lines.append(_replace_line_indentation(line, " ", ERROR_LOG_IDENT))
    sys.stdout.write(ERROR_LOG_LINE_TERMINATE.join(lines) + "\n")


# ---------------------------------------------------------------------------
# Logging: the root logger writes "[LEVEL]\t<time>\t<request id>\t<message>"
# lines to stdout, and stdout and stderr are flushed on every write.


_current_request_id = None


class LambdaLoggerHandler(logging.Handler):
    def emit(self, record):
        try:
            sys.stdout.write(self.format(record))
        except Exception:
            self.handleError(record)


class LambdaLoggerFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _current_request_id or ""
        return True


class Unbuffered(object):
    def __init__(self, stream):
        self.stream = stream

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        pass

    def __getattr__(self, attr):
        return getattr(self.stream, attr)

    def write(self, msg):
        self.stream.write(msg)
        self.stream.flush()

    def writelines(self, msgs):
        self.stream.writelines(msgs)
        self.stream.flush()


def setup_logging():
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    level = {None: "", "TRACE": "DEBUG"}.get(level, level).upper()

    logging.Formatter.converter = time.gmtime
    handler = LambdaLoggerHandler()
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    handler.addFilter(LambdaLoggerFilter())
    logger = logging.getLogger()
    if level in logging._nameToLevel:
        logger.setLevel(level)
    logger.addHandler(handler)


# ---------------------------------------------------------------------------
# The invoke loop.


def handle_event_request(client, request_handler, headers, body):
    invoke_id = headers.get("Lambda-Runtime-Aws-Request-Id")
    error_result = None
    try:
        client_context = None
        client_context_json = headers.get("Lambda-Runtime-Client-Context")
        if client_context_json:
            client_context = _parse_json_header(client_context_json, "Client Context")
        cognito_identity = None
        cognito_identity_json = headers.get("Lambda-Runtime-Cognito-Identity")
        if cognito_identity_json:
            cognito_identity = _parse_json_header(
                cognito_identity_json, "Cognito Identity"
            )
        context = LambdaContext(
            invoke_id,
            client_context,
            cognito_identity,
            int(headers.get("Lambda-Runtime-Deadline-Ms") or 0),
            headers.get("Lambda-Runtime-Invoked-Function-Arn"),
        )
        event = unmarshal_request(body, headers.get("Content-Type"))
        response = request_handler(event, context)
        result, content_type = marshal_response(response)
    except FaultException as e:
        error_result = make_error(e.msg, e.exception_type, e.trace, invoke_id)
    except Exception:
        error_result = build_fault_result(sys.exc_info(), invoke_id)

    if error_result is not None:
        log_error(error_result)
        client.post_invocation_error(invoke_id, error_result)
    else:
        client.post_invocation_result(invoke_id, result, content_type)


def main():
    global _current_request_id

    sys.stdout = Unbuffered(sys.stdout)
    sys.stderr = Unbuffered(sys.stderr)

    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    # Running as a script puts this file's directory first on sys.path; the
    # function's code comes first instead.
    here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    if sys.path and os.path.realpath(sys.path[0] or ".") == here:
        del sys.path[0]
    sys.path.insert(0, task_root)

    client = RuntimeClient(os.environ["AWS_LAMBDA_RUNTIME_API"])

    try:
        setup_logging()
        request_handler = get_handler(os.environ.get("_HANDLER", ""))
    except Exception as e:
        if isinstance(e, FaultException):
            error_result = make_error(e.msg, e.exception_type, e.trace)
        else:
            error_result = build_fault_result(sys.exc_info())
        log_error(error_result)
        client.post_init_error(error_result)
        sys.exit(1)

    while True:
        headers, body = client.wait_next_invocation()
        _current_request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        trace_id = headers.get("Lambda-Runtime-Trace-Id")
        if trace_id:
            os.environ["_X_AMZN_TRACE_ID"] = trace_id
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        handle_event_request(client, request_handler, headers, body)


if __name__ == "__main__":
    main()
