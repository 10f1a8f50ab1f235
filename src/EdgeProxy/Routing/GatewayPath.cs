namespace EdgeProxy.Routing;

/// <summary>
/// Splits a raw request target `/{service}/{model}[/{rest}][?query]` without allocating. The rest
/// and the query are kept byte for byte (no decoding, no re-encoding of %2F, %20 or +), because the
/// backend must see what the client sent.
/// </summary>
internal readonly ref struct GatewayPath(ReadOnlySpan<char> service, ReadOnlySpan<char> model, ReadOnlySpan<char> remainder)
{
    public ReadOnlySpan<char> Service { get; } = service;

    public ReadOnlySpan<char> Model { get; } = model;

    /// <summary>Everything after `/{service}/{model}`: empty, or starting with '/' or '?'.</summary>
    public ReadOnlySpan<char> Remainder { get; } = remainder;

    public static bool TryParse(ReadOnlySpan<char> rawTarget, out GatewayPath path)
    {
        path = default;
        if (rawTarget.Length < 4 || rawTarget[0] != '/')
        {
            return false;
        }
        var rest = rawTarget[1..];
        var end = rest.IndexOfAny('/', '?');
        if (end <= 0 || rest[end] != '/')
        {
            return false;
        }
        var service = rest[..end];
        rest = rest[(end + 1)..];
        end = rest.IndexOfAny('/', '?');
        var model = end < 0 ? rest : rest[..end];
        if (model.IsEmpty)
        {
            return false;
        }
        path = new GatewayPath(service, model, end < 0 ? ReadOnlySpan<char>.Empty : rest[end..]);
        return true;
    }

    /// <summary>
    /// True when the path part of <paramref name="remainder"/> has a "." or ".." segment, literal or
    /// percent-encoded, with encoded slashes and backslashes counted as separators (backends differ
    /// in what they decode). A backend resolving such a path (RFC 3986 §5.2.4) could be led above the
    /// path of its configured URL, with the gateway's upstream key attached.
    /// </summary>
    public static bool HasDotSegment(ReadOnlySpan<char> remainder)
    {
        var query = remainder.IndexOf('?');
        var path = query < 0 ? remainder : remainder[..query];
        if (!path.Contains('.') && !ContainsEncodedDot(path))
        {
            return false;
        }
        var decoded = Uri.UnescapeDataString(path.ToString()).Replace('\\', '/');
        foreach (var range in decoded.AsSpan().Split('/'))
        {
            if (decoded.AsSpan(range) is "." or "..")
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>"%2e" or "%2E" anywhere (cheaper than a culture-free ignore-case search on every request).</summary>
    private static bool ContainsEncodedDot(ReadOnlySpan<char> path)
    {
        for (var at = path.IndexOf('%'); at >= 0; at = path.IndexOf('%'))
        {
            path = path[(at + 1)..];
            if (path is ['2', 'e' or 'E', ..])
            {
                return true;
            }
        }
        return false;
    }
}
