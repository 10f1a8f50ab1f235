using System.Text;

namespace EdgeProxy.Forwarding;

/// <summary>
/// What the HTTP/1.1 fast path (<see cref="Http1FastPath"/>) needs to address one plain-http backend,
/// precomputed once per config snapshot: where to connect, the path prefix of its URL, and the
/// `Host` and upstream-key header lines as bytes. https backends have none (they take the general path).
/// </summary>
internal sealed class Http1Target
{
    private Http1Target(string host, int port, byte[] pathPrefix, byte[] hostLine, byte[] authLine)
    {
        Host = host;
        Port = port;
        PathPrefix = pathPrefix;
        HostLine = hostLine;
        AuthLine = authLine;
    }

    public string Host { get; }

    public int Port { get; }

    /// <summary>The path of the backend URL without a trailing slash ("" for none), as configured.</summary>
    public byte[] PathPrefix { get; }

    /// <summary>`Host: host[:port]\r\n` (RFC 9112 §3.2: the port only when it is not the scheme's default).</summary>
    public byte[] HostLine { get; }

    /// <summary>The backend's own key as a header line, or empty. Never logged.</summary>
    public byte[] AuthLine { get; }

    /// <summary>The connection pool, attached on first use by the fast path (one per host and port, owned by <see cref="HttpForwarder"/>).</summary>
    internal Http1ConnectionPool? Pool;

    public static Http1Target? TryCreate(string baseUrl, string? authHeaderName, string? authHeaderValue)
    {
        if (!Uri.TryCreate(baseUrl, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp
            || !string.IsNullOrEmpty(uri.UserInfo) || !Ascii.IsValid(baseUrl)
            || (authHeaderValue is not null && (!Ascii.IsValid(authHeaderValue) || authHeaderValue.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0)))
        {
            return null;
        }
        // The prefix exactly as written in the config (no re-encoding), like the general path's string concatenation.
        var afterScheme = baseUrl.IndexOf("://", StringComparison.Ordinal) + 3;
        var slash = baseUrl.IndexOf('/', afterScheme);
        var prefix = slash < 0 ? "" : baseUrl[slash..].TrimEnd('/');
        if (prefix.AsSpan().IndexOfAny('?', '#') >= 0)
        {
            return null;
        }
        var authLine = authHeaderName is null ? [] : Encoding.ASCII.GetBytes(authHeaderName + ": " + authHeaderValue + "\r\n");
        return new Http1Target(uri.IdnHost, uri.Port, Encoding.ASCII.GetBytes(prefix), Encoding.ASCII.GetBytes("Host: " + uri.Authority + "\r\n"), authLine);
    }
}
