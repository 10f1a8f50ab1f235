using System.Buffers.Text;
using System.Text;
using Microsoft.AspNetCore.WebUtilities;

namespace EdgeProxy.Forwarding;

/// <summary>
/// What the fast path needs from a backend's response head (RFC 9112 §4–§6): the status, how the
/// body is framed upstream and towards the client, and what kind of stream it is. A head that is
/// not valid RFC 9110/9112 (<see cref="HttpSyntax"/>: a token name, a value without control bytes,
/// one Content-Length of digits only, no body framing on a 204, a 2xx–5xx status) is an invalid
/// response — a 502, the same rule the general path applies to what SocketsHttpHandler hands over.
/// </summary>
/// <param name="ClientContentLength">The Content-Length the client gets, recomputed (the backend's own lines are never copied); -1 for none.</param>
/// <param name="ConnectionNamesFields">A Connection field names fields to drop (rare; <see cref="HeaderRules.ReadConnection"/>).</param>
/// <param name="FieldLines">How many field lines the head has.</param>
/// <param name="DroppedLines">Bit i set: field line i (of the first 64) is not relayed (<see cref="Relays"/>), found while parsing so writing the client's head does not look the names up again.</param>
internal readonly record struct Http1ResponseHead(
    int Status,
    Http1Framing Framing,
    long BodyLength,
    bool KeepAlive,
    StreamKind Kind,
    bool CarriesUsage,
    bool HasDate,
    long ClientContentLength,
    bool BodyAllowed,
    bool ConnectionNamesFields,
    int FieldLines,
    ulong DroppedLines)
{
    private static readonly byte[]?[] StatusLines = new byte[]?[600];

    /// <summary>The body goes to the client chunked when its length is not known up front.</summary>
    public bool ChunkedToClient => BodyAllowed && Framing != Http1Framing.Length;

    /// <summary>The value of the head's (validated) Retry-After field, read only for a refusal the gateway may retry elsewhere; null when absent.</summary>
    public static string? RetryAfterOf(ReadOnlySpan<byte> head)
    {
        for (var rest = head[(HttpAscii.IndexOfCrlf(head) + 2)..]; rest.Length > 2;)
        {
            var lineEnd = HttpAscii.IndexOfCrlf(rest);
            var line = rest[..lineEnd];
            rest = rest[(lineEnd + 2)..];
            var colon = line.IndexOf((byte)':');
            if (colon == 11 && HttpAscii.EqualsIgnoreCase(line[..colon], "Retry-After"u8))
            {
                return Encoding.Latin1.GetString(line[(colon + 1)..]);
            }
        }
        return null;
    }

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

        /// <summary>Never relayed: hop-by-hop (<see cref="HeaderRules.HopByHop"/>) or set by the gateway (<see cref="HeaderRules.ResponseReplaced"/>).</summary>
        Dropped,

        /// <summary>Replaced by the gateway's own value on event streams (no buffering anywhere).</summary>
        StreamReplaced,
    }

    /// <summary>
    /// Every response field name the fast path acts on or drops, one case-insensitive lookup per field:
    /// the parser learns from it both what a field means and whether it is relayed.
    /// </summary>
    private static readonly AsciiNameMap<Field> Names = new(BuildNames());

    private static Dictionary<string, Field> BuildNames()
    {
        var names = new Dictionary<string, Field>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in HeaderRules.HopByHop.Concat(HeaderRules.ResponseReplaced))
        {
            names[name] = Field.Dropped;
        }
        names["Content-Length"] = Field.ContentLength;
        names["Transfer-Encoding"] = Field.TransferEncoding;
        names["Connection"] = Field.Connection;
        names["Content-Type"] = Field.ContentType;
        names["Date"] = Field.Date;
        names["Cache-Control"] = Field.StreamReplaced;
        names["X-Accel-Buffering"] = Field.StreamReplaced;
        return names;
    }

    private static Field FieldOf(ReadOnlySpan<byte> name) => Names.TryGetValue(name, out var field) ? field : Field.Other;

    /// <summary>
    /// Hop-by-hop fields, the ones the gateway sets itself and the backend's framing (the client gets
    /// its own) are never relayed; the buffering fields not on an event stream.
    /// </summary>
    private static bool Dropped(Field field) => field is Field.Dropped or Field.Connection or Field.TransferEncoding or Field.ContentLength;

    /// <summary>Whether a field of this (validated) head goes on to the client, by name; fields a Connection field names are the caller's to drop.</summary>
    public bool Relays(ReadOnlySpan<byte> name)
    {
        var field = FieldOf(name);
        return !Dropped(field) && (field != Field.StreamReplaced || Kind == StreamKind.None);
    }

    /// <param name="head">The whole head including the final empty line.</param>
    /// <param name="headRequest">The request was HEAD: no body follows whatever the fields say (RFC 9110 §9.3.2).</param>
    public static Http1ResponseHead Parse(ReadOnlySpan<byte> head, bool headRequest)
    {
        // status-line = HTTP-version SP status-code SP [ reason-phrase ]   (RFC 9112 §4); a higher
        // minor version is read as 1.1 (§2.3), as SocketsHttpHandler does.
        var lineEnd = HttpAscii.IndexOfCrlf(head);
        var line = head[..lineEnd];
        var status = StatusOf(line);
        if (status < 200 || status > 599 || !char.IsAsciiDigit((char)line[7]) || line[8] != (byte)' '
            || (line.Length > 12 && (line[12] != (byte)' ' || !HttpSyntax.IsResponseFieldValue(line[13..]))))
        {
            throw Invalid("malformed status line");
        }
        var fields = new Fields(http10: line[7] == (byte)'0');
        fields.Read(head[(lineEnd + 2)..^2]);
        if (status == 204 && (fields.TransferEncoding || fields.ContentLength > 0))
        {
            // RFC 9110 §8.6, RFC 9112 §6.1: a 204 carries no body and no framing for one.
            throw Invalid("framing on a 204");
        }
        return Frame(status, ref fields, bodyAllowed: !headRequest && status is not (204 or 304));
    }

    /// <summary>How the body is framed upstream and towards the client (RFC 9112 §6.3), and what kind of stream it is.</summary>
    private static Http1ResponseHead Frame(int status, ref Fields fields, bool bodyAllowed)
    {
        var hasLength = fields.ContentLength >= 0;
        var clientLength = status == 204 ? -1 : fields.ContentLength;
        var bodyLength = fields.ContentLength;
        Http1Framing framing;
        if (!bodyAllowed)
        {
            // RFC 9110 §6.4.1: no body follows, whatever the framing fields say; the connection stays usable.
            (framing, bodyLength) = (Http1Framing.Length, 0);
            clientLength = fields.Chunked ? -1 : clientLength;
        }
        else if (fields.Chunked)
        {
            // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, and the connection must not be reused.
            (framing, bodyLength, clientLength) = (Http1Framing.Chunked, -1, -1);
            fields.KeepAlive &= !hasLength;
        }
        else if (hasLength)
        {
            framing = Http1Framing.Length;
        }
        else
        {
            framing = Http1Framing.UntilClose;
            fields.KeepAlive = false;
        }
        var contentType = fields.ContentType;
        var kind = StartsWithIgnoreCase(contentType, "text/event-stream"u8) ? StreamKind.Sse
            : StartsWithIgnoreCase(contentType, "application/x-ndjson"u8) || StartsWithIgnoreCase(contentType, "application/ndjson"u8)
                || StartsWithIgnoreCase(contentType, "application/jsonl"u8) ? StreamKind.Ndjson
            : !hasLength && fields.Chunked ? StreamKind.Chunked
            : StreamKind.None;
        var carriesUsage = kind is StreamKind.Sse or StreamKind.Ndjson || ContainsJson(contentType);
        var dropped = fields.DroppedLines | (kind == StreamKind.None ? 0 : fields.StreamReplacedLines);
        return new Http1ResponseHead(status, framing, bodyLength, fields.KeepAlive, kind, carriesUsage, fields.HasDate, clientLength, bodyAllowed,
            fields.ConnectionNamesFields, fields.Lines, dropped);
    }

    /// <summary>What the response's field lines say about framing, the connection and the content.</summary>
    private ref struct Fields(bool http10)
    {
        public long ContentLength = -1;
        public bool Chunked;
        public bool TransferEncoding;
        public bool KeepAlive = !http10;
        public bool HasDate;
        public bool ConnectionNamesFields;
        public ReadOnlySpan<byte> ContentType;
        public int Lines;
        public ulong DroppedLines;
        public ulong StreamReplacedLines;
        private readonly bool _http10 = http10;

        public void Read(ReadOnlySpan<byte> fields)
        {
            while (!fields.IsEmpty)
            {
                // field-line = field-name ":" OWS field-value OWS   (RFC 9112 §5): a token name (no
                // whitespace before the colon, no obs-fold line) and a value without control bytes.
                var lineEnd = HttpAscii.IndexOfCrlf(fields);
                var line = lineEnd < 0 ? fields : fields[..lineEnd];
                fields = lineEnd < 0 ? default : fields[(lineEnd + 2)..];
                var colon = line.IndexOf((byte)':');
                var name = colon < 0 ? default : line[..colon];
                var value = HttpAscii.TrimOws(line[(colon + 1)..]);
                if (!HttpSyntax.IsToken(name) || !HttpSyntax.IsResponseFieldValue(value))
                {
                    throw Invalid("malformed header field");
                }
                var field = FieldOf(name);
                Apply(field, value);
                Note(field);
            }
        }

        /// <summary>Marks the line just read when it is not relayed (lines past 64 are looked up by name when written).</summary>
        private void Note(Field field)
        {
            if (Lines < 64)
            {
                var bit = 1UL << Lines;
                DroppedLines |= Dropped(field) ? bit : 0;
                StreamReplacedLines |= field == Field.StreamReplaced ? bit : 0;
            }
            Lines++;
        }

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        private void Apply(Field field, ReadOnlySpan<byte> value)
        {
            switch (field)
            {
                case Field.ContentLength:
                    // RFC 9110 §8.6: one Content-Length, 1*DIGIT (repeated lines, even equal, are refused).
                    if (ContentLength >= 0 || !HttpSyntax.TryParseContentLength(value, out ContentLength))
                    {
                        throw Invalid("invalid Content-Length");
                    }
                    break;
                case Field.TransferEncoding:
                    TransferEncoding = true;
                    Chunked = value.Length >= 7 && HttpAscii.EqualsIgnoreCase(value[^7..], "chunked"u8);
                    break;
                case Field.Connection:
                    var tokens = HeaderRules.ReadConnection(value);
                    KeepAlive = (tokens & ConnectionTokens.Close) == 0 && (KeepAlive || (_http10 && (tokens & ConnectionTokens.KeepAlive) != 0));
                    ConnectionNamesFields |= (tokens & ConnectionTokens.NamesFields) != 0;
                    break;
                case Field.ContentType:
                    ContentType = value;
                    break;
                case Field.Date:
                    HasDate = true;
                    break;
            }
        }
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
