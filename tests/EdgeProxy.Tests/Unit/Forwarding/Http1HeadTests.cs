using System.Buffers;
using System.Text;
using EdgeProxy.Forwarding;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>
/// The fast path's head parsers: which request heads it takes (everything else is Kestrel's), what
/// it forwards, and how it reads a backend's response head (RFC 9112 §3–§7).
/// </summary>
public sealed class Http1HeadTests
{
    private const string Base = "GET /svc/m/v1/x?a=1 HTTP/1.1\r\nHost: gw\r\n";

    [Theory]
    [InlineData(Base + "\r\n", "Fast")]
    [InlineData("POST /svc/m HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\n", "Fast")]
    [InlineData("OPTIONS /svc/m HTTP/1.1\r\nHost: gw\r\n\r\n", "Fast")]
    [InlineData(Base + "Connection: keep-alive, X-Foo\r\nX-Foo: 1\r\n\r\n", "Fast")]
    [InlineData(Base + "X-Empty:\r\n\r\n", "Fast")]
    [InlineData("GET /svc/m HTTP/1.1\r\nHost: gw\r\n", "Incomplete")]
    [InlineData("GET /svc/m HTT", "Incomplete")]
    [InlineData("", "Incomplete")]
    [InlineData("GET /svc/m HTTP/1.0\r\nHost: gw\r\n\r\n", "NotFast")]
    [InlineData("GET http://gw/svc/m HTTP/1.1\r\nHost: gw\r\n\r\n", "NotFast")]
    [InlineData("TRACE /svc/m HTTP/1.1\r\nHost: gw\r\n\r\n", "NotFast")]
    [InlineData("get /svc/m HTTP/1.1\r\nHost: gw\r\n\r\n", "NotFast")]
    [InlineData("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "NotFast")]
    [InlineData("GET /svc/m HTTP/1.1\r\n\r\n", "NotFast")]
    [InlineData(Base + "Host: again\r\n\r\n", "NotFast")]
    [InlineData(Base + "Transfer-Encoding: chunked\r\n\r\n", "NotFast")]
    [InlineData(Base + "Expect: 100-continue\r\n\r\n", "NotFast")]
    [InlineData(Base + "Upgrade: websocket\r\n\r\n", "NotFast")]
    [InlineData(Base + "TE: trailers\r\n\r\n", "NotFast")]
    [InlineData(Base + "Origin: http://app\r\n\r\n", "NotFast")]
    [InlineData(Base + "Content-Length: 1\r\nContent-Length: 1\r\n\r\n", "NotFast")]
    [InlineData(Base + "Content-Length: -1\r\n\r\n", "NotFast")]
    [InlineData(Base + "Content-Length: 1e3\r\n\r\n", "NotFast")]
    [InlineData(Base + "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n", "NotFast")]
    [InlineData(Base + "X-API-Key: a\r\nx-api-key: b\r\n\r\n", "NotFast")]
    [InlineData(Base + "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n\r\n", "NotFast")]
    [InlineData(Base + "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: api\r\nX-Real-IP: 1.2.3.4\r\n\r\n", "Fast")]
    [InlineData(Base + "X-A : 1\r\n\r\n", "NotFast")]
    [InlineData(Base + " X-A: 1\r\n\r\n", "NotFast")]
    [InlineData(Base + "X-A: 1\r\n folded\r\n\r\n", "NotFast")]
    [InlineData(Base + "X-A: a\u0000b\r\n\r\n", "NotFast")]
    [InlineData(Base + "X-A: caf\u00e9\r\n\r\n", "NotFast")]
    [InlineData(Base + "X-A: 1\n\r\n", "NotFast")]
    [InlineData("GET /svc/m HTTP/1.1\nHost: gw\n\n", "NotFast")]
    [InlineData("GET /svc/m\u00e4 HTTP/1.1\r\nHost: gw\r\n\r\n", "NotFast")]
    [InlineData("GET /svc/m  HTTP/1.1\r\nHost: gw\r\n\r\n", "NotFast")]
    // What the fast path declines the general path refuses by the same rules (HttpSyntax):
    [InlineData("GET /svc/m/a\tb HTTP/1.1\r\nHost: gw\r\n\r\n", "NotFast")]
    [InlineData("GET /svc/m/a\u0001b HTTP/1.1\r\nHost: gw\r\n\r\n", "NotFast")]
    [InlineData("GET /svc/m/a\u007fb HTTP/1.1\r\nHost: gw\r\n\r\n", "NotFast")]
    [InlineData("GET /svc/m/a?q=\u0001 HTTP/1.1\r\nHost: gw\r\n\r\n", "NotFast")]
    [InlineData("GET /svc/m/a\rb HTTP/1.1\r\nHost: gw\r\n\r\n", "NotFast")]
    [InlineData("GET /svc/m/a%00b HTTP/1.1\r\nHost: gw\r\n\r\n", "NotFast")]
    [InlineData("GET /svc/m/a%zz HTTP/1.1\r\nHost: gw\r\n\r\n", "NotFast")]
    [InlineData("GET /svc/m/a#f HTTP/1.1\r\nHost: gw\r\n\r\n", "NotFast")]
    [InlineData("GET /svc/m/a?q=%00 HTTP/1.1\r\nHost: gw\r\n\r\n", "Fast")]
    [InlineData("GET /svc/m HTTP/1.1\r\nHost: gw/../x@evil\r\n\r\n", "NotFast")]
    [InlineData("GET /svc/m HTTP/1.1\r\nHost: u@gw\r\n\r\n", "NotFast")]
    [InlineData("GET /svc/m HTTP/1.1\r\nHost: gw:65536\r\n\r\n", "NotFast")]
    [InlineData("GET /svc/m HTTP/1.1\r\nHost: g,w\r\n\r\n", "NotFast")]
    [InlineData("GET /svc/m HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "Fast")]
    [InlineData(Base + "X-A: a\u0001b\r\n\r\n", "NotFast")]
    [InlineData(Base + "X-A: a\u007fb\r\n\r\n", "NotFast")]
    [InlineData(Base + "X-A: a\tb\r\n\r\n", "Fast")]
    [InlineData(Base + "X(A): 1\r\n\r\n", "NotFast")]
    [InlineData(Base + "Content-Length: +1\r\n\r\n", "NotFast")]
    [InlineData(Base + "Content-Length: 1, 1\r\n\r\n", "NotFast")]
    [InlineData(Base + "Content-Length: 001\r\n\r\n", "Fast")]
    [InlineData(Base + "Connection: keep-alive\u0001\r\n\r\n", "NotFast")]
    [InlineData("Get /svc/m HTTP/1.1\r\nHost: gw\r\n\r\n", "NotFast")]
    [InlineData("CONNECT /svc/m HTTP/1.1\r\nHost: gw\r\n\r\n", "NotFast")]
    public void Request_heads_the_fast_path_takes(string raw, string expected)
    {
        var head = new Http1RequestHead();

        Assert.Equal(expected, head.TryRead(new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(raw)), out _).ToString());
    }

    [Fact]
    public void A_head_split_over_segments_parses_and_consumes_exactly_the_head()
    {
        var raw = Encoding.ASCII.GetBytes("POST /svc/m/v1/chat?x=%2F HTTP/1.1\r\nHost: gw:8000\r\nAuthorization: Bearer k\r\nContent-Length: 4\r\nConnection: close\r\nX-Request-ID: abc\r\n\r\nbody");
        var sequence = Segments(raw, 7);
        var head = new Http1RequestHead();

        Assert.Equal(Http1HeadStatus.Fast, head.TryRead(sequence, out var consumed));

        Assert.Equal("body", Encoding.ASCII.GetString(sequence.Slice(consumed).ToArray()));
        Assert.Equal("POST", head.Method);
        Assert.Equal("/svc/m/v1/chat?x=%2F", Encoding.ASCII.GetString(head.Target));
        Assert.Equal(4, head.ContentLength);
        Assert.True(head.Close);
        Assert.Equal("gw:8000", Encoding.ASCII.GetString(head.Value(head.Host)));
        Assert.Equal("Bearer k", Encoding.ASCII.GetString(head.Value(head.Authorization)));
        Assert.Equal("abc", Encoding.ASCII.GetString(head.Value(head.RequestId)));
        Assert.Equal(-1, head.ApiKey);
    }

    [Fact]
    public void Only_end_to_end_fields_are_marked_for_forwarding()
    {
        var raw = Base + "Authorization: Bearer k\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n"
            + "Proxy-Authorization: Basic x\r\nX-Forwarded-For: 6.6.6.6\r\nX-Request-ID: r1\r\nContent-Type: text/plain\r\nX-Kept:  spaced value  \r\n\r\n";
        var head = new Http1RequestHead();
        Assert.Equal(Http1HeadStatus.Fast, head.TryRead(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(raw)), out _));

        var forwarded = new List<string>();
        for (var i = 0; i < head.FieldCount; i++)
        {
            if (head.Forwarded(i))
            {
                forwarded.Add(Encoding.ASCII.GetString(head.Line(i)));
            }
        }

        Assert.Equal(["Content-Type: text/plain", "X-Kept:  spaced value"], forwarded);
        Assert.True(head.ForwardedFor >= 0);
        Assert.True(head.IsContentField(head.FieldCount - 2));
        Assert.Equal("spaced value", Encoding.ASCII.GetString(head.Value(head.FieldCount - 1)));
    }

    [Theory]
    [InlineData("Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-Kept: 2\r\n", "X-Kept: 2")]
    [InlineData("Connection: X-Hop, close\r\nX-Hop: 1\r\nX-Kept: 2\r\n", "X-Kept: 2")]
    [InlineData("Connection: keep-alive\r\nConnection: x-hop\r\nX-Hop: 1\r\nX-Kept: 2\r\n", "X-Kept: 2")]
    [InlineData("X-Hop: 1\r\nConnection: , X-HOP ,\r\nX-Kept: 2\r\n", "X-Kept: 2")]
    [InlineData("Connection: keep-alive\r\nX-Hop: 1\r\nX-Kept: 2\r\n", "X-Hop: 1|X-Kept: 2")]
    public void Fields_a_connection_field_names_are_not_forwarded(string fields, string forwarded)
    {
        var head = new Http1RequestHead();
        Assert.Equal(Http1HeadStatus.Fast, head.TryRead(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(Base + fields + "\r\n")), out _));

        var kept = Enumerable.Range(0, head.FieldCount).Where(head.Forwarded).Select(i => Encoding.ASCII.GetString(head.Line(i)));

        Assert.Equal(forwarded, string.Join("|", kept));
    }

    [Fact]
    public void A_head_larger_than_the_limit_is_left_to_kestrel()
    {
        var raw = Base + "X-Big: " + new string('a', Http1RequestHead.MaxHeadBytes) + "\r\n\r\n";
        var head = new Http1RequestHead();

        Assert.Equal(Http1HeadStatus.NotFast, head.TryRead(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(raw)), out _));
        Assert.Equal(Http1HeadStatus.NotFast, head.TryRead(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(raw[..^4])), out _));
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, "Length", 5L, true, "None", false)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, "Chunked", -1L, true, "Chunked", true)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n", false, "Chunked", -1L, false, "None", true)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n", false, "Chunked", -1L, true, "Sse", true)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n\r\n", false, "UntilClose", -1L, false, "Ndjson", true)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", false, "Length", 2L, false, "None", false)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n", false, "Length", 2L, true, "None", false)]
    [InlineData("HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\n", false, "Length", 2L, true, "None", false)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n", false, "Length", 2L, false, "None", false)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n", true, "Length", 0L, true, "None", false)]
    [InlineData("HTTP/1.1 204 No Content\r\n\r\n", false, "Length", 0L, true, "None", false)]
    [InlineData("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", false, "Length", 0L, true, "Chunked", false)]
    public void Response_heads_give_framing_and_stream_kind(string raw, bool headRequest, string framing, long length, bool keepAlive, string kind, bool chunkedToClient)
    {
        var head = Http1ResponseHead.Parse(Encoding.ASCII.GetBytes(raw), headRequest);

        Assert.Equal(framing, head.Framing.ToString());
        Assert.Equal(length, head.BodyLength);
        Assert.Equal(keepAlive, head.KeepAlive);
        Assert.Equal(kind, head.Kind.ToString());
        Assert.Equal(chunkedToClient, head.ChunkedToClient);
    }

    [Theory]
    [InlineData("HTTP/1.1 2000 OK\r\n\r\n")]
    [InlineData("HTTP/2 200 OK\r\n\r\n")]
    [InlineData("HTTP/1.1 200OK\r\n\r\n")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\n folded\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n")]
    [InlineData("HTTP/1.1 099 Odd\r\n\r\n")]
    [InlineData("HTTP/1.1 600 Odd\r\n\r\n")]
    [InlineData("HTTP/1.x 200 OK\r\n\r\n")]
    [InlineData("HTTP/1.1 200 O\u0001K\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-\u0001B: 1\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX B: 1\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\n: 1\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nNo colon\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-\u00c9: 1\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-B: a\u0001b\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-B: a\u001b[31mb\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-B: a\u007fb\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-B: a\u0000b\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-B: a\rb\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-B: a\nb\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n")]
    [InlineData("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")]
    [InlineData("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n")]
    public void Invalid_response_heads_are_upstream_failures(string raw)
    {
        var error = Assert.Throws<HttpRequestException>(() => Http1ResponseHead.Parse(Encoding.Latin1.GetBytes(raw), headRequest: false));

        Assert.Equal(HttpRequestError.InvalidResponse, error.HttpRequestError);
    }

    /// <summary>The client gets one framing field: the backend's Content-Length lines are never copied, a recomputed one is written.</summary>
    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 002\r\n\r\n", false, "Content-Length: 2")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: \t2 \r\n\r\n", false, "Content-Length: 2")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n", false, "Transfer-Encoding: chunked")]
    [InlineData("HTTP/1.0 200 OK\r\n\r\n", false, "Transfer-Encoding: chunked")]
    [InlineData("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false, "")]
    [InlineData("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false, "Content-Length: 5")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n", true, "Content-Length: 20")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, "")]
    public void The_client_gets_one_recomputed_framing_field(string raw, bool headRequest, string framing)
    {
        var head = Encoding.ASCII.GetBytes(raw);
        var response = Http1ResponseHead.Parse(head, headRequest);
        var buffer = new byte[1024];

        var written = Encoding.ASCII.GetString(buffer, 0, HttpForwarder.WriteResponseHead(buffer, head, response, new RequestId("r1"), close: false));

        var framingLines = written.Split("\r\n").Where(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase) || l.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase));
        Assert.Equal(framing, string.Join("|", framingLines));
    }

    [Fact]
    public void Response_fields_a_connection_field_names_and_long_names_are_handled_on_bytes()
    {
        var raw = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-" + new string('n', 100) + ": long\r\nX-B: caf\u00e9\r\nContent-Length: 0\r\n\r\n";
        var head = Encoding.Latin1.GetBytes(raw);
        var response = Http1ResponseHead.Parse(head, headRequest: false);
        var buffer = new byte[1024];

        var written = Encoding.Latin1.GetString(buffer, 0, HttpForwarder.WriteResponseHead(buffer, head, response, new RequestId("r1"), close: false));

        Assert.DoesNotContain("X-Hop", written, StringComparison.Ordinal);
        Assert.DoesNotContain("Connection", written, StringComparison.Ordinal);
        Assert.Contains("\r\nX-" + new string('n', 100) + ": long\r\n", written, StringComparison.Ordinal);
        Assert.Contains("\r\nX-B: caf\u00e9\r\n", written, StringComparison.Ordinal);
    }

    /// <summary>Relayed lines come out whole and in order around dropped ones at the start, in between, in a row and at the end.</summary>
    [Theory]
    [InlineData("Server: x\r\nA: 1\r\nKeep-Alive: t\r\nTrailer: u\r\nB: 2\r\nC: 3\r\nX-Request-ID: y\r\n", "A: 1\r\nB: 2\r\nC: 3\r\n")]
    [InlineData("A: 1\r\nB: 2\r\n", "A: 1\r\nB: 2\r\n")]
    [InlineData("Server: x\r\nConnection: close\r\n", "")]
    [InlineData("", "")]
    public void Response_fields_are_relayed_whole_around_dropped_ones(string fields, string relayed)
    {
        var head = Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nDate: d\r\n" + fields + "Content-Length: 0\r\n\r\n");
        var response = Http1ResponseHead.Parse(head, headRequest: false);
        var buffer = new byte[1024];

        var written = Encoding.ASCII.GetString(buffer, 0, HttpForwarder.WriteResponseHead(buffer, head, response, new RequestId("r1"), close: false));

        Assert.Equal("HTTP/1.1 200 OK\r\nDate: d\r\n" + relayed + "X-Request-ID: r1\r\nContent-Length: 0\r\n\r\n", written);
    }

    /// <summary>Past the 64 lines the parse marks, fields are dropped by name: the same rules either way.</summary>
    [Fact]
    public void Response_heads_of_more_than_64_lines_drop_the_same_fields()
    {
        var lines = Enumerable.Range(0, 70).Select(i => i switch
        {
            3 or 66 => $"Server: s{i}",
            10 or 68 => $"Keep-Alive: k{i}",
            69 => "X-Request-ID: theirs",
            _ => $"X-F{i}: {i}",
        }).ToArray();
        var head = Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nDate: d\r\n" + string.Concat(lines.Select(l => l + "\r\n")) + "Content-Length: 0\r\n\r\n");
        var response = Http1ResponseHead.Parse(head, headRequest: false);
        var buffer = new byte[4096];

        var written = Encoding.ASCII.GetString(buffer, 0, HttpForwarder.WriteResponseHead(buffer, head, response, new RequestId("r1"), close: false));

        var relayed = string.Concat(lines.Where(l => l.StartsWith("X-F", StringComparison.Ordinal)).Select(l => l + "\r\n"));
        Assert.Equal("HTTP/1.1 200 OK\r\nDate: d\r\n" + relayed + "X-Request-ID: r1\r\nContent-Length: 0\r\n\r\n", written);
    }

    [Fact]
    public void Response_fields_that_shape_the_relay_are_noted()
    {
        var head = Http1ResponseHead.Parse("HTTP/1.1 200 OK\r\nDate: Sun, 29 Nov 2026 10:00:00 GMT\r\nConnection: X-Hop\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n"u8, headRequest: false);

        Assert.True(head.HasDate);
        Assert.True(head.ConnectionNamesFields);
        Assert.True(head.CarriesUsage);
        Assert.Equal("HTTP/1.1 404 Not Found\r\n", Encoding.ASCII.GetString(Http1ResponseHead.StatusLine(404)));
    }

    private static ReadOnlySequence<byte> Segments(byte[] bytes, int size)
    {
        Segment? first = null;
        Segment? last = null;
        for (var offset = 0; offset < bytes.Length; offset += size)
        {
            var segment = new Segment(bytes.AsMemory(offset, Math.Min(size, bytes.Length - offset)), last?.RunningIndex + last?.Memory.Length ?? 0);
            if (last is null)
            {
                first = segment;
            }
            else
            {
                last.Next = segment;
            }
            last = segment;
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public new Segment? Next
        {
            get => (Segment?)base.Next;
            set => base.Next = value;
        }
    }
}
