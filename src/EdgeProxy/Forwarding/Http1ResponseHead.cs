using System.Buffers.Text;
using System.Text;
using Microsoft.AspNetCore.WebUtilities;

namespace EdgeProxy.Forwarding;

/// <summary>
/// What the fast path needs from a backend's response head (RFC 9112 §4–§6): the status, how the
/// body is framed upstream and towards the client, and what kind of stream it is. Parsed with the
/// lean client's rules (<see cref="LeanConnection"/>): one Content-Length, chunked as the final
/// coding, `Connection: close`, no obs-fold.
/// </summary>
internal readonly record struct Http1ResponseHead(
    int Status,
    LeanFraming Framing,
    long BodyLength,
    bool KeepAlive,
    StreamKind Kind,
    bool CarriesUsage,
    bool HasDate,
    bool DropContentLength,
    bool BodyAllowed,
    string? ConnectionOptions)
{
    private static readonly byte[]?[] StatusLines = new byte[]?[600];

    /// <summary>The body goes to the client chunked when its length is not known up front.</summary>
    public bool ChunkedToClient => BodyAllowed && Framing != LeanFraming.Length;

    /// <summary>The status code of a head whose status line is not yet validated (0 when malformed).</summary>
    public static int StatusOf(ReadOnlySpan<byte> head)
        => head.Length >= 12 && head.StartsWith("HTTP/1."u8) && Utf8Parser.TryParse(head.Slice(9, 3), out int status, out var used) && used == 3 ? status : 0;

    private enum Field : byte
    {
        Other,
        ContentLength,
        TransferEncoding,
        Connection,
        ContentType,
        Date,
    }

    /// <summary>The fields the parser acts on, by length first: one case-insensitive compare per field at most (five in a row were ~3% of the fast path's instructions).</summary>
    private static Field FieldOf(ReadOnlySpan<byte> name) => name.Length switch
    {
        4 when HttpAscii.EqualsIgnoreCase(name, "Date"u8) => Field.Date,
        10 when HttpAscii.EqualsIgnoreCase(name, "Connection"u8) => Field.Connection,
        12 when HttpAscii.EqualsIgnoreCase(name, "Content-Type"u8) => Field.ContentType,
        14 when HttpAscii.EqualsIgnoreCase(name, "Content-Length"u8) => Field.ContentLength,
        17 when HttpAscii.EqualsIgnoreCase(name, "Transfer-Encoding"u8) => Field.TransferEncoding,
        _ => Field.Other,
    };

    /// <param name="head">The whole head including the final empty line.</param>
    /// <param name="headRequest">The request was HEAD: no body follows whatever the fields say (RFC 9110 §9.3.2).</param>
    public static Http1ResponseHead Parse(ReadOnlySpan<byte> head, bool headRequest)
    {
        var lineEnd = HttpAscii.IndexOfCrlf(head);
        var line = head[..lineEnd];
        var status = StatusOf(line);
        if (status < 200 || status > 599 || line[8] != (byte)' ' || (line.Length > 12 && line[12] != (byte)' '))
        {
            throw Invalid("malformed status line");
        }
        var http10 = line[7] == (byte)'0';
        var keepAlive = !http10;
        long bodyLength = -1;
        var chunked = false;
        var hasDate = false;
        var contentType = default(ReadOnlySpan<byte>);
        string? connectionOptions = null;
        var fields = head[(lineEnd + 2)..^2];
        while (!fields.IsEmpty)
        {
            lineEnd = HttpAscii.IndexOfCrlf(fields);
            line = lineEnd < 0 ? fields : fields[..lineEnd];
            fields = lineEnd < 0 ? default : fields[(lineEnd + 2)..];
            var colon = line.IndexOf((byte)':');
            if (colon <= 0 || line[0] is (byte)' ' or (byte)'\t' || line[colon - 1] is (byte)' ' or (byte)'\t' || line.IndexOfAny((byte)'\0', (byte)'\r', (byte)'\n') >= 0)
            {
                throw Invalid("malformed header field");
            }
            var name = line[..colon];
            var value = HttpAscii.TrimOws(line[(colon + 1)..]);
            switch (FieldOf(name))
            {
                case Field.ContentLength:
                    if (!Utf8Parser.TryParse(value, out long parsed, out var used) || used != value.Length || parsed < 0 || (bodyLength >= 0 && bodyLength != parsed))
                    {
                        throw Invalid("invalid Content-Length");
                    }
                    bodyLength = parsed;
                    break;
                case Field.TransferEncoding:
                    chunked = value.Length >= 7 && HttpAscii.EqualsIgnoreCase(value[^7..], "chunked"u8);
                    break;
                case Field.Connection:
                    var extra = false;
                    foreach (var range in value.Split((byte)','))
                    {
                        var token = HttpAscii.TrimOws(value[range]);
                        if (HttpAscii.EqualsIgnoreCase(token, "close"u8))
                        {
                            keepAlive = false;
                        }
                        else if (HttpAscii.EqualsIgnoreCase(token, "keep-alive"u8))
                        {
                            keepAlive |= http10;
                        }
                        else if (!token.IsEmpty)
                        {
                            extra = true;
                        }
                    }
                    // Almost always just keep-alive or close: a string only when it names other fields.
                    if (extra)
                    {
                        connectionOptions = HeaderRules.ExtraConnectionOptions(Encoding.ASCII.GetString(value));
                    }
                    break;
                case Field.ContentType:
                    contentType = value;
                    break;
                case Field.Date:
                    hasDate = true;
                    break;
            }
        }

        var hasLength = bodyLength >= 0;
        var dropLength = false;
        var bodyAllowed = !headRequest && status is not (204 or 304);
        LeanFraming framing;
        if (!bodyAllowed)
        {
            // RFC 9110 §6.4.1: no body follows, whatever the framing fields say; the connection stays usable.
            framing = LeanFraming.Length;
            bodyLength = 0;
        }
        else if (chunked)
        {
            // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, and the connection must not be reused.
            framing = LeanFraming.Chunked;
            if (hasLength)
            {
                keepAlive = false;
                dropLength = true;
            }
            bodyLength = -1;
        }
        else if (hasLength)
        {
            framing = LeanFraming.Length;
        }
        else
        {
            framing = LeanFraming.UntilClose;
            keepAlive = false;
        }

        var kind = StreamKind.None;
        if (StartsWithIgnoreCase(contentType, "text/event-stream"u8))
        {
            kind = StreamKind.Sse;
        }
        else if (StartsWithIgnoreCase(contentType, "application/x-ndjson"u8) || StartsWithIgnoreCase(contentType, "application/ndjson"u8)
            || StartsWithIgnoreCase(contentType, "application/jsonl"u8))
        {
            kind = StreamKind.Ndjson;
        }
        else if (!hasLength && chunked)
        {
            kind = StreamKind.Chunked;
        }
        var carriesUsage = kind is StreamKind.Sse or StreamKind.Ndjson || ContainsJson(contentType);
        return new Http1ResponseHead(status, framing, bodyLength, keepAlive, kind, carriesUsage, hasDate, dropLength, bodyAllowed, connectionOptions);
    }

    private static bool StartsWithIgnoreCase(ReadOnlySpan<byte> value, ReadOnlySpan<byte> prefix)
        => value.Length >= prefix.Length && HttpAscii.EqualsIgnoreCase(value[..prefix.Length], prefix);

    private static bool ContainsJson(ReadOnlySpan<byte> contentType) => HttpAscii.ContainsIgnoreCase(contentType, "json"u8);

    /// <summary>`HTTP/1.1 {status} {reason}\r\n`, built once per status code.</summary>
    public static byte[] StatusLine(int status)
    {
        var line = StatusLines[status];
        if (line is null)
        {
            line = Encoding.ASCII.GetBytes("HTTP/1.1 " + status.ToString(System.Globalization.CultureInfo.InvariantCulture) + " " + ReasonPhrases.GetReasonPhrase(status) + "\r\n");
            StatusLines[status] = line;
        }
        return line;
    }

    private static HttpRequestException Invalid(string what)
        => new(HttpRequestError.InvalidResponse, "Invalid upstream response: " + what + ".");
}
