using System.Buffers;

namespace EdgeProxy.Forwarding;

/// <summary>
/// One HTTP/1.1 request head as the fast path (<see cref="Http1FastPath"/>) sees it: copied out of
/// the connection's input into a per-connection buffer and parsed strictly (RFC 9112 §3, §5) with
/// <see cref="HttpSyntax"/>, the rules the general path admits requests by. The parser accepts only
/// the plain, common shape; anything else — another version, an absolute-form target, obs-fold, a
/// byte the grammar forbids, an invalid Host, Transfer-Encoding, Expect, Upgrade, a CORS request,
/// repeated credentials — is <see cref="Http1HeadStatus.NotFast"/>, and the general path takes the
/// request: Kestrel refuses what it refuses, and the dispatcher refuses the rest with the same rules
/// (<see cref="Hosting.RequestAdmission"/>), so every 4xx is worded in one place.
/// </summary>
internal sealed class Http1RequestHead
{
    /// <summary>Heads larger than this go to Kestrel (its MaxRequestHeadersTotalSize is 32 KiB).</summary>
    public const int MaxHeadBytes = 16 * 1024;

    /// <summary>More header fields than this go to Kestrel (typical SDK requests send 8–15).</summary>
    public const int MaxFields = 64;

    /// <summary>A field name longer than this sends the request to Kestrel (none the fast path knows comes near it).</summary>
    private const int MaxNameLength = 64;

    /// <summary>
    /// Every field name the fast path treats specially, with what it is: one case-insensitive lookup
    /// per field (three set lookups per field were most of the parse's ~0.9 µs). Hop-by-hop
    /// (<see cref="HeaderRules.HopByHop"/>) and replaced (<see cref="HeaderRules.RequestReplaced"/>)
    /// fields are never forwarded; <see cref="FieldKind.NotFast"/> ones send the request to Kestrel —
    /// semantics the fast path does not implement. Unknown names are <see cref="FieldKind.Other"/>.
    /// </summary>
    private static readonly AsciiNameMap<FieldKind> Kinds = new(BuildKinds());

    private static Dictionary<string, FieldKind> BuildKinds()
    {
        var kinds = new Dictionary<string, FieldKind>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in HeaderRules.HopByHop)
        {
            kinds[name] = FieldKind.Dropped;
        }
        foreach (var name in HeaderRules.RequestReplaced)
        {
            kinds[name] = FieldKind.Dropped;
        }
        foreach (var name in new[] { "Transfer-Encoding", "Expect", "Upgrade", "TE", "Origin", "Access-Control-Request-Method", "HTTP2-Settings" })
        {
            kinds[name] = FieldKind.NotFast;
        }
        kinds["Host"] = FieldKind.Host;
        kinds["X-API-Key"] = FieldKind.ApiKey;
        kinds["X-Forwarded-For"] = FieldKind.ForwardedFor;
        kinds["X-Forwarded-Host"] = FieldKind.ForwardedHost;
        kinds["X-Forwarded-Proto"] = FieldKind.ForwardedProto;
        kinds["Connection"] = FieldKind.Connection;
        kinds["X-Request-ID"] = FieldKind.RequestId;
        kinds["Authorization"] = FieldKind.Authorization;
        kinds["Content-Length"] = FieldKind.ContentLength;
        return kinds;
    }

    private enum FieldKind : byte
    {
        Other,
        Dropped,
        NotFast,
        Host,
        ApiKey,
        ForwardedFor,
        ForwardedHost,
        ForwardedProto,
        Connection,
        RequestId,
        Authorization,
        ContentLength,
    }

    private Field[] _fields = new Field[16];

    /// <summary>
    /// The head bytes (request line, fields, empty line) at [0, Length): rented per request and
    /// given back by <see cref="Release"/> once the upstream request is written, so neither an idle
    /// keep-alive connection nor a long event stream holds one.
    /// </summary>
    public byte[] Buffer { get; private set; } = [];

    public void Release()
    {
        var buffer = Buffer;
        Buffer = [];
        if (buffer.Length > 0)
        {
            HeadBuffers.Return(buffer);
        }
    }

    public int Length { get; private set; }

    public string Method { get; private set; } = "GET";

    public int TargetStart { get; private set; }

    public int TargetLength { get; private set; }

    public ReadOnlySpan<byte> Target => Buffer.AsSpan(TargetStart, TargetLength);

    /// <summary>Where the part after `/{service}/{model}` starts in <see cref="Target"/> (set by routing).</summary>
    public int RemainderOffset { get; set; }

    /// <summary>-1 without a Content-Length field.</summary>
    public long ContentLength { get; private set; }

    /// <summary>The client asked to close the connection after this exchange (`Connection: close`).</summary>
    public bool Close { get; private set; }

    public int FieldCount { get; private set; }

    /// <summary>Field indexes (or -1): the credentials, the client's request id, Host, the forwarding headers.</summary>
    public int Authorization { get; private set; }

    public int ApiKey { get; private set; }

    public int RequestId { get; private set; }

    public int Host { get; private set; }

    /// <summary>Field indexes (or -1) of X-Forwarded-For / -Proto / -Host, believed only from a trusted proxy.</summary>
    public int ForwardedFor { get; private set; }

    public int ForwardedProto { get; private set; }

    public int ForwardedHost { get; private set; }

    public ReadOnlySpan<byte> Value(int field) => Buffer.AsSpan(_fields[field].ValueStart, _fields[field].ValueLength);

    public ReadOnlySpan<byte> Name(int field) => Buffer.AsSpan(_fields[field].NameStart, _fields[field].NameLength);

    /// <summary>The `name: value` line as sent, without trailing whitespace and CRLF, to be copied upstream.</summary>
    public ReadOnlySpan<byte> Line(int field) => Buffer.AsSpan(_fields[field].NameStart, _fields[field].LineLength);

    /// <summary>False for hop-by-hop fields and the ones the gateway replaces (<see cref="HeaderRules"/>).</summary>
    public bool Forwarded(int field) => _fields[field].Forward;

    /// <summary>A `Content-*` field: forwarded only with a body, as on the general path.</summary>
    public bool IsContentField(int field) => _fields[field].Content;

    /// <summary>
    /// Finds a complete head at the start of <paramref name="input"/>, copies and parses it.
    /// <paramref name="consumed"/> is the head's end when the result is <see cref="Http1HeadStatus.Fast"/>.
    /// </summary>
    public Http1HeadStatus TryRead(in ReadOnlySequence<byte> input, out SequencePosition consumed)
    {
        consumed = input.Start;
        var length = HeadLength(input);
        if (length < 0)
        {
            // A bare LF (RFC 9112 §2.2) never ends a head here: Kestrel decides what such a request is.
            return input.Length >= MaxHeadBytes || HasBareLineFeed(input) ? Http1HeadStatus.NotFast : Http1HeadStatus.Incomplete;
        }
        if (length > MaxHeadBytes)
        {
            return Http1HeadStatus.NotFast;
        }
        if (Buffer.Length < length)
        {
            Release();
            Buffer = HeadBuffers.Rent(Math.Max(length, 1024));
        }
        input.Slice(0, length).CopyTo(Buffer);
        Length = length;
        consumed = input.GetPosition(length);
        return Parse() ? Http1HeadStatus.Fast : Http1HeadStatus.NotFast;
    }

    /// <summary>
    /// The head's length through its empty line, or -1 before it arrived. A head in one segment (the
    /// usual case) is searched as a span: a sequence reader's search cost several times more.
    /// </summary>
    private static int HeadLength(in ReadOnlySequence<byte> input)
    {
        if (input.IsSingleSegment)
        {
            var end = input.FirstSpan.IndexOf("\r\n\r\n"u8);
            return end < 0 ? -1 : end + 4;
        }
        var reader = new SequenceReader<byte>(input);
        return reader.TryReadTo(out ReadOnlySequence<byte> head, "\r\n\r\n"u8, advancePastDelimiter: true)
            ? (int)Math.Min(head.Length + 4, int.MaxValue) : -1;
    }

    private static bool HasBareLineFeed(in ReadOnlySequence<byte> input)
    {
        var previous = (byte)0;
        foreach (var segment in input)
        {
            var span = segment.Span;
            var index = span.IndexOf((byte)'\n');
            while (index >= 0)
            {
                if ((index == 0 ? previous : span[index - 1]) != (byte)'\r')
                {
                    return true;
                }
                var next = span[(index + 1)..].IndexOf((byte)'\n');
                index = next < 0 ? -1 : index + 1 + next;
            }
            if (!span.IsEmpty)
            {
                previous = span[^1];
            }
        }
        return false;
    }

    private bool Parse()
    {
        ContentLength = -1;
        Close = false;
        FieldCount = 0;
        Authorization = ApiKey = RequestId = Host = -1;
        ForwardedFor = ForwardedProto = ForwardedHost = -1;
        _connectionNamesFields = false;
        var head = Buffer.AsSpan(0, Length - 2);

        // request-line = method SP request-target SP HTTP-version CRLF   (RFC 9112 §3)
        var lineEnd = HttpAscii.IndexOfCrlf(head);
        var line = head[..lineEnd];
        var space = line.IndexOf((byte)' ');
        if (space <= 0 || HttpSyntax.Method(line[..space]) is not { } method)
        {
            return false;
        }
        Method = method;
        var target = line[(space + 1)..];
        var space2 = target.IndexOf((byte)' ');
        if (space2 <= 0 || target[0] != (byte)'/' || !target[(space2 + 1)..].SequenceEqual("HTTP/1.1"u8)
            || !HttpSyntax.IsRequestTarget(target[..space2]))
        {
            return false;
        }
        TargetStart = space + 1;
        TargetLength = space2;

        // field-line = field-name ":" OWS field-value OWS   (RFC 9112 §5)
        var offset = lineEnd + 2;
        while (offset < head.Length)
        {
            var rest = head[offset..];
            lineEnd = HttpAscii.IndexOfCrlf(rest);
            line = lineEnd < 0 ? rest : rest[..lineEnd];
            var colon = line.IndexOf((byte)':');
            if (colon <= 0 || colon > MaxNameLength || !HttpSyntax.IsToken(line[..colon]) || FieldCount == MaxFields)
            {
                return false;
            }
            if (FieldCount == _fields.Length)
            {
                Array.Resize(ref _fields, Math.Min(_fields.Length * 2, MaxFields));
            }
            var value = HttpAscii.TrimOws(line[(colon + 1)..], out var leading);
            if (!HttpSyntax.IsRequestFieldValue(value))
            {
                return false;
            }
            var valueStart = offset + colon + 1 + leading;
            var name = line[..colon];
            var index = FieldCount;
            var kind = Kinds.TryGetValue(name, out var known) ? known : FieldKind.Other;
            if (!Classify(kind, value, index))
            {
                return false;
            }
            _fields[index] = new Field(offset, colon, valueStart, value.Length, valueStart - offset + value.Length,
                Forward: kind == FieldKind.Other,
                Content: name.Length > 8 && HttpAscii.EqualsIgnoreCase(name[..8], "Content-"u8),
                Connection: kind == FieldKind.Connection);
            FieldCount++;
            offset += line.Length + 2;
        }
        if (_connectionNamesFields)
        {
            DropFieldsNamedByConnection();
        }
        return Host >= 0;
    }

    /// <summary>A Connection field names a field beyond the hop-by-hop ones (rare: then each forwarded field is checked).</summary>
    private bool _connectionNamesFields;

    /// <summary>Fields a Connection field names are hop-by-hop too (RFC 9110 §7.6.1): not forwarded.</summary>
    private void DropFieldsNamedByConnection()
    {
        for (var i = 0; i < FieldCount; i++)
        {
            if (!_fields[i].Forward)
            {
                continue;
            }
            for (var c = 0; c < FieldCount; c++)
            {
                if (_fields[c].Connection && HeaderRules.NamedByConnection(Value(c), Name(i)))
                {
                    _fields[i] = _fields[i] with { Forward = false };
                    break;
                }
            }
        }
    }

    /// <summary>Notes the fields the fast path acts on; false when one makes the request Kestrel's.</summary>
    private bool Classify(FieldKind kind, ReadOnlySpan<byte> value, int index)
    {
        switch (kind)
        {
            case FieldKind.Host:
                // Exactly one valid authority (RFC 9112 §3.2): it is sent on as X-Forwarded-Host.
                if (Host >= 0 || value.IsEmpty || !HttpSyntax.IsHost(value))
                {
                    return false;
                }
                Host = index;
                return true;
            case FieldKind.ApiKey:
                if (ApiKey >= 0)
                {
                    return false;
                }
                ApiKey = index;
                return true;
            case FieldKind.ForwardedFor:
                return Once(ForwardedFor, ForwardedFor = index);
            case FieldKind.ForwardedHost:
                return Once(ForwardedHost, ForwardedHost = index);
            case FieldKind.ForwardedProto:
                return Once(ForwardedProto, ForwardedProto = index);
            case FieldKind.Connection:
                var tokens = HeaderRules.ReadConnection(value);
                Close |= (tokens & ConnectionTokens.Close) != 0;
                _connectionNamesFields |= (tokens & ConnectionTokens.NamesFields) != 0;
                return true;
            case FieldKind.RequestId:
                if (RequestId >= 0)
                {
                    return false;
                }
                RequestId = index;
                return true;
            case FieldKind.Authorization:
                if (Authorization >= 0)
                {
                    return false;
                }
                Authorization = index;
                return true;
            case FieldKind.ContentLength:
                // RFC 9112 §6.3: one valid decimal length; anything else is the general path's.
                if (ContentLength >= 0 || !HttpSyntax.TryParseContentLength(value, out var length))
                {
                    return false;
                }
                ContentLength = length;
                return true;
            case FieldKind.NotFast:
                return false;
            default:
                return true;
        }
    }

    /// <summary>A forwarding field may appear once here (several lines of one are the general path's to join).</summary>
    private static bool Once(int previous, int _) => previous < 0;

    private readonly record struct Field(int NameStart, int NameLength, int ValueStart, int ValueLength, int LineLength, bool Forward, bool Content, bool Connection);
}

internal enum Http1HeadStatus
{
    /// <summary>No complete head buffered yet.</summary>
    Incomplete,

    /// <summary>Parsed; the fast path may take it (routing and auth still decide).</summary>
    Fast,

    /// <summary>Kestrel's HTTP stack takes this request and the rest of the connection.</summary>
    NotFast,
}
