using System.Buffers;
using System.Text;

namespace EdgeProxy.Forwarding;

/// <summary>
/// The HTTP/1.1 grammar every path holds messages to (RFC 9110 §5, §8.6; RFC 9112 §3–§4), as
/// byte-level checks. The fast path parses heads with them; the general path applies the same
/// functions to what Kestrel and SocketsHttpHandler accepted (<see cref="WireBytes"/> gives their
/// strings back as the bytes that were on the wire). Where Kestrel is laxer (control bytes in the
/// target, odd Host values), these rules decide, on both paths: the gateway is never laxer than the
/// library the fast path replaces, nor than the RFC. Each check is one vectorised span search on
/// the common input, with no allocation.
/// </summary>
internal static class HttpSyntax
{
    /// <summary>tchar (RFC 9110 §5.6.2): field names and methods are one or more of these.</summary>
    private static readonly SearchValues<byte> TokenBytes = SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    /// <summary>
    /// A request's field value: VCHAR, SP and HTAB (RFC 9110 §5.5) and nothing else, so no control
    /// byte, DEL or obs-text. (Kestrel takes UTF-8 here, which SocketsHttpHandler cannot send on.)
    /// </summary>
    private static readonly SearchValues<byte> RequestValueBytes = SearchValues.Create(Bytes(b => b is >= 0x20 and <= 0x7E or '\t'));

    /// <summary>A response's field value or reason phrase: VCHAR, SP, HTAB and obs-text (RFC 9110 §5.5, RFC 9112 §4), relayed as they are.</summary>
    private static readonly SearchValues<byte> ResponseValueBytes = SearchValues.Create(Bytes(b => b is >= 0x20 and <= 0x7E or '\t' or >= 0x80));

    /// <summary>A Host name (RFC 3986 §3.2.2 reg-name, without pct-encoded and the sub-delims Kestrel refuses: * + , ; =).</summary>
    private static readonly SearchValues<byte> HostNameBytes = SearchValues.Create("!$&'()-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    /// <summary>Inside an IP-literal's brackets: IPv6 (hex, ':' and a dotted IPv4 tail); no zone id, no IPvFuture (Kestrel refuses both).</summary>
    private static readonly SearchValues<byte> IpLiteralBytes = SearchValues.Create(".:0123456789ABCDEFabcdef"u8);

    /// <summary>The methods the gateway serves, as spelled (RFC 9110 §9.1: case-sensitive); `Allow` lists them.</summary>
    public const string AllowedMethods = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS";

    private static byte[] Bytes(Func<int, bool> include)
    {
        var bytes = new List<byte>();
        for (var b = 0; b < 256; b++)
        {
            if (include(b))
            {
                bytes.Add((byte)b);
            }
        }
        return [.. bytes];
    }

    /// <summary>One of the seven methods the gateway forwards, as the interned string; null for anything else (lower case included).</summary>
    public static string? Method(ReadOnlySpan<byte> method) => method.Length switch
    {
        3 when method.SequenceEqual("GET"u8) => "GET",
        3 when method.SequenceEqual("PUT"u8) => "PUT",
        4 when method.SequenceEqual("POST"u8) => "POST",
        4 when method.SequenceEqual("HEAD"u8) => "HEAD",
        5 when method.SequenceEqual("PATCH"u8) => "PATCH",
        6 when method.SequenceEqual("DELETE"u8) => "DELETE",
        7 when method.SequenceEqual("OPTIONS"u8) => "OPTIONS",
        _ => null,
    };

    /// <summary><see cref="Method(ReadOnlySpan{byte})"/> for the method string Kestrel parsed.</summary>
    public static bool IsMethod(string method)
    {
        Span<byte> bytes = stackalloc byte[7];
        return method.Length <= bytes.Length && Ascii.FromUtf16(method, bytes, out var written) == OperationStatus.Done
            && Method(bytes[..written]) is not null;
    }

    /// <summary>field-name = token (RFC 9110 §5.1): no whitespace, no separator, no control byte.</summary>
    public static bool IsToken(ReadOnlySpan<byte> name) => !name.IsEmpty && !name.ContainsAnyExcept(TokenBytes);

    /// <summary>A request field value (already without its surrounding OWS); empty is valid.</summary>
    /// <remarks>
    /// Checked as the range SP..'~' first (one plain vector compare, far cheaper on short values than a
    /// set search); only a value with a byte outside it — in practice an HTAB — goes to the full set.
    /// </remarks>
    public static bool IsRequestFieldValue(ReadOnlySpan<byte> value)
    {
        var outside = value.IndexOfAnyExceptInRange((byte)0x20, (byte)0x7E);
        return outside < 0 || !value[outside..].ContainsAnyExcept(RequestValueBytes);
    }

    /// <summary>A response field value, or a status line's reason phrase; empty is valid.</summary>
    /// <remarks>The common all-VCHAR value takes the one range compare, as for requests.</remarks>
    public static bool IsResponseFieldValue(ReadOnlySpan<byte> value)
    {
        var outside = value.IndexOfAnyExceptInRange((byte)0x20, (byte)0x7E);
        return outside < 0 || !value[outside..].ContainsAnyExcept(ResponseValueBytes);
    }

    /// <summary>
    /// Content-Length = 1*DIGIT (RFC 9110 §8.6), OWS already removed: no sign, no list, no
    /// spaces inside; up to 18 digits (beyond any body the gateway would accept, and within a long).
    /// </summary>
    public static bool TryParseContentLength(ReadOnlySpan<byte> value, out long length)
    {
        length = 0;
        if (value.IsEmpty || value.Length > 18 || value.ContainsAnyExceptInRange((byte)'0', (byte)'9'))
        {
            return false;
        }
        foreach (var digit in value)
        {
            length = length * 10 + (digit - '0');
        }
        return true;
    }

    /// <summary>
    /// A request-target any path may forward (RFC 9112 §3.2, RFC 3986 §2.1): only
    /// visible ASCII except '#' (a fragment is never sent; the characters RFC 3986 leaves out
    /// but clients do send unescaped stay, as Kestrel and nginx take them); in the path (before the
    /// query) every percent sign starts a complete escape of two
    /// hex digits and none is %00 (a NUL a backend would decode). The query's escapes are the
    /// backend's business (clients send a bare '%' there, and nginx passes it).
    /// </summary>
    public static bool IsRequestTarget(ReadOnlySpan<byte> target)
    {
        // '!'..'~' less '#': a range compare and a byte search, both plain vector scans.
        if (target.IsEmpty || target.ContainsAnyExceptInRange((byte)0x21, (byte)0x7E) || target.Contains((byte)'#'))
        {
            return false;
        }
        var query = target.IndexOf((byte)'?');
        var path = query < 0 ? target : target[..query];
        for (var at = path.IndexOf((byte)'%'); at >= 0;)
        {
            if (at + 2 >= path.Length || !char.IsAsciiHexDigit((char)path[at + 1]) || !char.IsAsciiHexDigit((char)path[at + 2])
                || (path[at + 1] == (byte)'0' && path[at + 2] == (byte)'0'))
            {
                return false;
            }
            var next = path[(at + 3)..].IndexOf((byte)'%');
            at = next < 0 ? -1 : at + 3 + next;
        }
        return true;
    }

    /// <summary>
    /// Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2), OWS already removed. Empty is
    /// valid (RFC 9112 §3.2: a target without authority); otherwise a reg-name or IPv4 address of
    /// <see cref="HostNameBytes"/>, or an IPv6 literal in brackets, then optionally ':' and a port of
    /// 1–5 digits up to 65535. Userinfo, paths, '%' and whitespace are never an authority.
    /// </summary>
    public static bool IsHost(ReadOnlySpan<byte> host)
    {
        if (host.IsEmpty)
        {
            return true;
        }
        ReadOnlySpan<byte> port;
        if (host[0] == (byte)'[')
        {
            var close = host.IndexOf((byte)']');
            if (close < 2 || host[1..close].ContainsAnyExcept(IpLiteralBytes))
            {
                return false;
            }
            port = host[(close + 1)..];
        }
        else
        {
            var colon = host.IndexOf((byte)':');
            var name = colon < 0 ? host : host[..colon];
            if (name.IsEmpty || name.ContainsAnyExcept(HostNameBytes))
            {
                return false;
            }
            port = colon < 0 ? default : host[colon..];
        }
        if (port.IsEmpty)
        {
            return true;
        }
        return port[0] == (byte)':' && port.Length is >= 2 and <= 6 && TryParseContentLength(port[1..], out var number) && number <= 65535;
    }

    /// <summary>A rule of this class applied to a string the HTTP libraries decoded off the wire (the general path's view of a head).</summary>
    public static bool Holds(ReadOnlySpan<char> text, ByteRule rule)
    {
        using var bytes = new WireBytes(text, stackalloc byte[256]);
        return bytes.Valid && rule(bytes.Span);
    }
}

/// <summary>One of <see cref="HttpSyntax"/>'s checks, for <see cref="HttpSyntax.Holds"/>.</summary>
internal delegate bool ByteRule(ReadOnlySpan<byte> bytes);

/// <summary>
/// A string the HTTP libraries decoded from a head, as the bytes that were on the wire: Kestrel
/// decodes request fields as ASCII and SocketsHttpHandler response fields as Latin-1, one char per
/// byte either way, so narrowing gives the bytes back for <see cref="HttpSyntax"/>'s checks. A char
/// above 0xFF cannot have come off the wire as one byte: <see cref="Valid"/> is false then. Short
/// strings live in the caller's stack buffer; longer ones in a pooled array, returned by Dispose.
/// </summary>
internal ref struct WireBytes
{
    private byte[]? _rented;

    public WireBytes(ReadOnlySpan<char> text, Span<byte> stack)
    {
        if (text.ContainsAnyExceptInRange('\0', '\u00FF'))
        {
            Valid = false;
            Span = default;
            return;
        }
        var buffer = text.Length <= stack.Length ? stack : (_rented = ArrayPool<byte>.Shared.Rent(text.Length));
        Span = buffer[..Encoding.Latin1.GetBytes(text, buffer)];
        Valid = true;
    }

    public bool Valid { get; }

    public ReadOnlySpan<byte> Span { get; }

    public void Dispose()
    {
        if (_rented is not null)
        {
            ArrayPool<byte>.Shared.Return(_rented);
            _rented = null;
        }
    }
}
