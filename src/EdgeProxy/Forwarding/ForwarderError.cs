namespace EdgeProxy.Forwarding;

/// <summary>
/// Why forwarding did not end with a complete upstream response. Closed set, mapped to a status
/// code and a client-facing message in exactly one place (<see cref="ForwarderErrors"/>).
/// </summary>
internal enum ForwarderError
{
    None,

    /// <summary>No backend of the model may take requests (all unhealthy and fail-fast configured).</summary>
    NoHealthyBackend,

    /// <summary>The backend refused or reset the connection before the request was delivered.</summary>
    ConnectFailed,

    /// <summary>The TCP connect did not finish within CONNECT_TIMEOUT.</summary>
    ConnectTimeout,

    /// <summary>No response headers / first body byte within FIRST_BYTE_TIMEOUT.</summary>
    FirstByteTimeout,

    /// <summary>The upstream failed while receiving the request or before sending headers.</summary>
    UpstreamRequestFailed,

    /// <summary>The client's request body could not be read (client went away or sent a bad body).</summary>
    ClientRequestBody,

    /// <summary>The client's request body exceeds MAX_REQUEST_BODY_MB.</summary>
    RequestBodyTooLarge,

    /// <summary>The client sent no part of its request body for CLIENT_BODY_TIMEOUT.</summary>
    ClientBodyTimeout,

    /// <summary>The client disconnected; the upstream request was cancelled.</summary>
    ClientGone,

    /// <summary>After the response started: the backend reset or truncated the body.</summary>
    UpstreamReset,

    /// <summary>After the response started: no chunk within STREAM_IDLE_TIMEOUT.</summary>
    StreamIdleTimeout,

    /// <summary>The gateway is shutting down and SHUTDOWN_TIMEOUT ran out before the exchange ended.</summary>
    Shutdown,

    /// <summary>Every backend that may take the request is full: it waits in the model's line (never answered as such).</summary>
    Busy,

    /// <summary>Every backend was full and the model's line was at max_queue (429).</summary>
    QueueFull,

    /// <summary>Every backend stayed full for the model's queue_timeout (429).</summary>
    QueueTimeout,
}

internal static class ForwarderErrors
{
    /// <summary>
    /// The client's doing (gone, slow, bad or oversized body): never counted against the backend's
    /// passive health or its error count, whatever path or timer noticed it.
    /// </summary>
    public static bool IsClientFault(ForwarderError error)
        => error is ForwarderError.ClientGone or ForwarderError.ClientRequestBody or ForwarderError.ClientBodyTimeout or ForwarderError.RequestBodyTooLarge;

    /// <summary>Status for an error before the response started. 499 is nginx's "client closed request", log only.</summary>
    public static int StatusCode(ForwarderError error) => error switch
    {
        ForwarderError.NoHealthyBackend => 503,
        ForwarderError.ConnectFailed => 502,
        ForwarderError.ConnectTimeout => 504,
        ForwarderError.FirstByteTimeout => 504,
        ForwarderError.UpstreamRequestFailed => 502,
        ForwarderError.ClientRequestBody => 400,
        ForwarderError.RequestBodyTooLarge => 413,
        ForwarderError.ClientBodyTimeout => 408,
        ForwarderError.ClientGone => 499,
        ForwarderError.UpstreamReset => 502,
        ForwarderError.StreamIdleTimeout => 504,
        ForwarderError.Shutdown => 503,
        ForwarderError.QueueFull or ForwarderError.QueueTimeout => 429,
        _ => 500,
    };

    /// <summary>Short machine-readable code, used in error bodies, logs and the stream-abort metric.</summary>
    public static string Code(ForwarderError error) => error switch
    {
        ForwarderError.NoHealthyBackend => "no_healthy_backend",
        ForwarderError.ConnectFailed => "upstream_connect_failed",
        ForwarderError.ConnectTimeout => "upstream_connect_timeout",
        ForwarderError.FirstByteTimeout => "upstream_first_byte_timeout",
        ForwarderError.UpstreamRequestFailed => "upstream_request_failed",
        ForwarderError.ClientRequestBody => "client_request_body",
        ForwarderError.RequestBodyTooLarge => "request_body_too_large",
        ForwarderError.ClientBodyTimeout => "client_body_timeout",
        ForwarderError.ClientGone => "client_gone",
        ForwarderError.UpstreamReset => "upstream_reset",
        ForwarderError.StreamIdleTimeout => "idle_timeout",
        ForwarderError.Shutdown => "shutdown",
        ForwarderError.QueueFull => "queue_full",
        ForwarderError.QueueTimeout => "queue_timeout",
        _ => "none",
    };

    /// <summary>What the client is told. Never exception text: it can carry internal addresses.</summary>
    public static string Message(ForwarderError error) => error switch
    {
        ForwarderError.NoHealthyBackend => "No healthy backend is available for this model.",
        ForwarderError.ConnectFailed => "Could not connect to any backend of this model.",
        ForwarderError.ConnectTimeout => "Connecting to the backend timed out.",
        ForwarderError.FirstByteTimeout => "The backend did not answer in time.",
        ForwarderError.UpstreamRequestFailed => "The backend failed while handling the request.",
        ForwarderError.ClientRequestBody => "The request body could not be read.",
        ForwarderError.RequestBodyTooLarge => "The request body is too large.",
        ForwarderError.ClientBodyTimeout => "The request body did not arrive in time.",
        ForwarderError.ClientGone => "The client closed the request.",
        ForwarderError.UpstreamReset => "The backend connection was reset mid-response.",
        ForwarderError.StreamIdleTimeout => "The backend stopped sending data.",
        ForwarderError.Shutdown => "The gateway is shutting down.",
        ForwarderError.QueueFull => "Every backend of this model is busy and too many requests are waiting; retry later.",
        ForwarderError.QueueTimeout => "Every backend of this model stayed busy; retry later.",
        _ => "Internal error.",
    };

    /// <summary>
    /// Seconds the client should wait before retrying (the `Retry-After` of the answer), for the
    /// errors that mean "busy, not broken"; null for the rest. One second: slots free as requests
    /// finish, so a client that backs off that long either finds one or joins the line again.
    /// </summary>
    public static int? RetryAfterSeconds(ForwarderError error)
        => error is ForwarderError.QueueFull or ForwarderError.QueueTimeout ? 1 : null;

    /// <summary>
    /// Whether the outcome is the backend's failure (its in-flight error count, its dashboard error
    /// rate): the client leaving, the client's own body and the gateway's shutdown are not.
    /// </summary>
    public static bool BlamesBackend(ForwarderError error)
        => error is not (ForwarderError.None or ForwarderError.Shutdown or ForwarderError.Busy or ForwarderError.QueueFull or ForwarderError.QueueTimeout)
            && !IsClientFault(error);
}
