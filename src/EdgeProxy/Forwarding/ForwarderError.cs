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
        _ => "Internal error.",
    };

    /// <summary>
    /// Whether the outcome is the backend's failure (its in-flight error count, its dashboard error
    /// rate): the client leaving, the client's own body and the gateway's shutdown are not.
    /// </summary>
    public static bool BlamesBackend(ForwarderError error)
        => error is not (ForwarderError.None or ForwarderError.Shutdown) && !IsClientFault(error);
}
