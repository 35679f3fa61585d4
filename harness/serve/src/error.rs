//! Errors as the OpenAI API and vLLM write them: `{"error": {"message", "type", "param",
//! "code"}}` for every status, with the status as `code` (vLLM's `ErrorResponse`).

use axum::http::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A failed request: its status, message and the request field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub message: String,
    /// The request field at fault (`"max_tokens"`, `"messages[2].role"`), when one is.
    pub param: Option<String>,
    /// Close the connection after the answer (the request's body was not read to its end).
    pub close: bool,
}

impl ApiError {
    /// An error of `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            param: None,
            close: false,
        }
    }

    /// A 400 about the request field `param`.
    pub fn bad(param: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message).with_param(param)
    }

    /// The same error naming the request field at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    /// vLLM's 404 for a model it does not serve.
    pub fn unknown_model(name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("The model `{name}` does not exist."),
        )
        .with_param("model")
    }

    /// The error `type` of a status, as the OpenAI SDK names its exceptions.
    pub fn kind(status: StatusCode) -> &'static str {
        match status.as_u16() {
            400 => "BadRequestError",
            401 => "AuthenticationError",
            403 => "PermissionDeniedError",
            404 => "NotFoundError",
            405 => "MethodNotAllowedError",
            408 => "RequestTimeoutError",
            409 => "ConflictError",
            413 => "RequestTooLargeError",
            415 => "UnsupportedMediaTypeError",
            422 => "UnprocessableEntityError",
            429 => "RateLimitError",
            503 => "ServiceUnavailableError",
            s if s >= 500 => "InternalServerError",
            _ => "BadRequestError",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": Self::kind(self.status),
            "param": self.param,
            "code": self.status.as_u16(),
        }})
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        // The rest of a request's body may still be on the wire: the connection cannot carry
        // another request.
        if self.close {
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Middleware: any error response that is not JSON (the router's own 404 and 405, a
/// rejection of a layer) is rewritten as an OpenAI-style error of the same status.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let message = match status {
        StatusCode::NOT_FOUND => format!("{method} {path} does not exist"),
        StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on {path}"),
        s => s.canonical_reason().unwrap_or("error").to_string(),
    };
    let allow = resp.headers().get(axum::http::header::ALLOW).cloned();
    let mut out = ApiError::new(status, message).into_response();
    if let Some(allow) = allow {
        out.headers_mut().insert(axum::http::header::ALLOW, allow);
    }
    out
}
