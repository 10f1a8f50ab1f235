using Microsoft.AspNetCore.Http;

namespace EdgeProxy.Forwarding;

/// <summary>X-Request-ID: the client's when well-formed, otherwise a new one; echoed on every response.</summary>
internal static class RequestIds
{
    public const string HeaderName = "X-Request-ID";

    public const int MaxLength = 128;

    public static string FromRequestOrNew(HttpRequest request)
    {
        var values = request.Headers[HeaderName];
        if (values.Count == 1 && IsWellFormed(values[0]))
        {
            return values[0]!;
        }
        return NewId();
    }

    /// <summary>1–128 printable ASCII characters from a conservative set (no spaces, quotes or separators that could break logs or headers).</summary>
    public static bool IsWellFormed(ReadOnlySpan<char> value)
    {
        if (value.IsEmpty || value.Length > MaxLength)
        {
            return false;
        }
        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':' or '/' or '+' or '=' or '@'))
            {
                return false;
            }
        }
        return true;
    }

    public static string NewId() => Guid.NewGuid().ToString("N");
}
