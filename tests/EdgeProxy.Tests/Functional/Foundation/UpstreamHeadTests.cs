using System.Text;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>
/// A backend's response head, on every path and transport (<see cref="StrictnessFixture"/>): one
/// that is not valid RFC 9110/9112 is a 502 in the gateway's JSON shape, never relayed; a valid one
/// reaches the client with one canonical framing field (a Content-Length the gateway recomputed, or
/// chunked) and without the fields its Connection field names.
/// </summary>
[Collection(StrictnessCollection.Name)]
public sealed class UpstreamHeadTests(StrictnessFixture fixture, ITestOutputHelper output)
{
    /// <summary>Heads no path may relay (RFC 9110 §5.1, §5.5, §8.6, §15; RFC 9112 §4, §6).</summary>
    public static readonly Dictionary<string, string> Invalid = new()
    {
        ["ctl-in-name"] = "HTTP/1.1 200 OK\r\nX-\u0001B: 1\r\nContent-Length: 2\r\n\r\nok",
        ["ctl-in-value"] = "HTTP/1.1 200 OK\r\nX-B: a\u0001b\r\nContent-Length: 2\r\n\r\nok",
        ["esc-in-value"] = "HTTP/1.1 200 OK\r\nX-B: a\u001b[31mb\r\nContent-Length: 2\r\n\r\nok",
        ["del-in-value"] = "HTTP/1.1 200 OK\r\nX-B: a\u007fb\r\nContent-Length: 2\r\n\r\nok",
        ["space-in-name"] = "HTTP/1.1 200 OK\r\nX B: 1\r\nContent-Length: 2\r\n\r\nok",
        ["empty-name"] = "HTTP/1.1 200 OK\r\n: 1\r\nContent-Length: 2\r\n\r\nok",
        ["non-ascii-name"] = "HTTP/1.1 200 OK\r\nX-\u00c9: 1\r\nContent-Length: 2\r\n\r\nok",
        ["cl-plus"] = "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
        ["cl-minus"] = "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
        ["cl-two-equal"] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        ["cl-two-different"] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        ["cl-list"] = "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
        ["cl-hex"] = "HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok",
        ["204-with-body"] = "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
        ["204-chunked"] = "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ["status-099"] = "HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok",
        ["status-600"] = "HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok",
        ["status-101-unasked"] = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
        ["status-four-digits"] = "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
        ["reason-ctl"] = "HTTP/1.1 200 O\u0001K\r\nContent-Length: 2\r\n\r\nok",
        ["version-lowercase"] = "http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ["version-2"] = "HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ["version-1.x"] = "HTTP/1.x 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ["not-http"] = "not http at all\r\n\r\n",
    };

    [Theory]
    [MemberData(nameof(InvalidNames))]
    public async Task An_invalid_backend_head_is_a_502_in_the_gateway_shape_on_every_path(string name)
    {
        fixture.Answer(Answer.Of(Invalid[name]));
        try
        {
            var failures = new List<string>();
            foreach (var (variant, gateway, _) in fixture.Gateways)
            {
                var id = $"head-{name}-{variant.Name.Replace('+', '-')}";
                var response = await RawHttp.SendAsync(gateway.Port, $"GET /svc/m/head HTTP/1.1\nHost: gw\nX-Request-ID: {id}");
                output.WriteLine($"{name} {variant.Name}: {response.Status}");
                if (response.Status != 502 || !response.BodyText.Contains($"\"request_id\":\"{id}\"", StringComparison.Ordinal)
                    || !response.BodyText.Contains("\"code\":\"upstream_request_failed\"", StringComparison.Ordinal))
                {
                    failures.Add($"{variant.Name}:\n{response}");
                }
            }
            Assert.True(failures.Count == 0, string.Join("\n\n", failures));
        }
        finally
        {
            fixture.Answer(Answer.Ok);
        }
    }

    public static TheoryData<string> InvalidNames => [.. Invalid.Keys];

    /// <summary>
    /// The upstream connection an invalid head came on is not used again (the bytes after it are not
    /// a response): with the backend keeping it open, the next request still gets a clean answer.
    /// </summary>
    [Theory]
    [InlineData("204-with-body")]
    [InlineData("cl-two-equal")]
    [InlineData("ctl-in-value")]
    public async Task After_an_invalid_head_the_next_request_gets_a_clean_answer_on_every_path(string name)
    {
        try
        {
            var failures = new List<string>();
            foreach (var (variant, gateway, _) in fixture.Gateways)
            {
                fixture.Answer(Answer.Of(Invalid[name], close: false));
                var bad = await RawHttp.SendAsync(gateway.Port, "GET /svc/m/head HTTP/1.1\nHost: gw");
                fixture.Answer(Answer.Ok);
                var next = await RawHttp.SendAsync(gateway.Port, "GET /svc/m/next HTTP/1.1\nHost: gw");
                output.WriteLine($"{name} {variant.Name}: {bad.Status}, then {next.Status}");
                if (bad.Status != 502 || next.Status != 200 || next.BodyText != "ok")
                {
                    failures.Add($"{variant.Name}:\n{bad}\n--- then\n{next}");
                }
            }
            Assert.True(failures.Count == 0, string.Join("\n\n", failures));
        }
        finally
        {
            fixture.Answer(Answer.Ok);
        }
    }

    /// <summary>Valid heads: what the client must get (status, then a check of the relayed head).</summary>
    private static readonly Dictionary<string, (string Answer, int Status, Action<RawResponse> Check)> Valid = new()
    {
        ["cl-leading-zeros"] = ("HTTP/1.1 200 OK\r\nContent-Length: 002\r\n\r\nok", 200, r => Framing(r, "2")),
        ["cl-ows"] = ("HTTP/1.1 200 OK\r\nContent-Length: \t 2 \r\n\r\nok", 200, r => Framing(r, "2")),
        ["chunked-over-length"] = ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n2\r\nok\r\n0\r\n\r\n", 200, r => Framing(r, null)),
        ["close-delimited"] = ("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nok", 200, r => Framing(r, null)),
        ["204-length-zero"] = ("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", 204, r => Assert.False(r.HasHeader("Content-Length") || r.HasHeader("Transfer-Encoding"), r.ToString())),
        ["304-with-length"] = ("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", 304, r => Assert.Equal("5", r.Header("Content-Length"))),
        ["obs-text-value"] = ("HTTP/1.1 200 OK\r\nX-B: caf\u00e9 \u00ff\r\nContent-Length: 2\r\n\r\nok", 200, r => Assert.Equal("caf\u00e9 \u00ff", r.Header("X-B"))),
        ["long-name"] = ("HTTP/1.1 200 OK\r\nX-" + new string('n', 100) + ": 1\r\nContent-Length: 2\r\n\r\nok", 200, r => Assert.Equal("1", r.Header("X-" + new string('n', 100)))),
        ["version-1.2"] = ("HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, r => Framing(r, "2")),
        ["tab-in-value"] = ("HTTP/1.1 200 OK\r\nX-B: a\tb\r\nContent-Length: 2\r\n\r\nok", 200, r => Assert.Equal("a\tb", r.Header("X-B"))),
        ["connection-names-field"] = ("HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Foo\r\nX-Foo: 1\r\nX-Kept: 2\r\nContent-Length: 2\r\n\r\nok", 200, r => NotRelayed(r, "X-Foo")),
        ["connection-close-names-field"] = ("HTTP/1.1 200 OK\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\nX-Kept: 2\r\nContent-Length: 2\r\n\r\nok", 200, r => NotRelayed(r, "X-Foo")),
        ["connection-two-lines"] = ("HTTP/1.1 200 OK\r\nConnection: X-Foo\r\nConnection: keep-alive\r\nX-Foo: 1\r\nX-Kept: 2\r\nContent-Length: 2\r\n\r\nok", 200, r => NotRelayed(r, "X-Foo")),
        ["replaced-fields"] = ("HTTP/1.1 200 OK\r\nServer: backend/1\r\nX-Request-ID: theirs\r\nContent-Length: 2\r\n\r\nok", 200,
            r => Assert.True(!r.HasHeader("Server") && r.Header("X-Request-ID")!.StartsWith("head-", StringComparison.Ordinal), r.ToString())),
    };

    public static TheoryData<string> ValidNames => [.. Valid.Keys];

    [Theory]
    [MemberData(nameof(ValidNames))]
    public async Task A_valid_backend_head_reaches_the_client_with_one_canonical_framing_on_every_path(string name)
    {
        var (answer, status, check) = Valid[name];
        fixture.Answer(Answer.Of(answer));
        try
        {
            var failures = new List<string>();
            foreach (var (variant, gateway, _) in fixture.Gateways)
            {
                var id = $"head-{name}-{variant.Name.Replace('+', '-')}";
                var response = await RawHttp.SendAsync(gateway.Port, $"GET /svc/m/head HTTP/1.1\nHost: gw\nX-Request-ID: {id}");
                output.WriteLine($"{name} {variant.Name}: {response.Status}");
                try
                {
                    Assert.Equal(status, response.Status);
                    Assert.True(response.Headers.Count(h => h.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)) <= 1, "more than one Content-Length");
                    Assert.False(response.HasHeader("Content-Length") && response.HasHeader("Transfer-Encoding"), "two framings");
                    check(response);
                }
                catch (Exception ex) when (ex is Xunit.Sdk.XunitException)
                {
                    failures.Add($"{variant.Name}: {ex.Message}\n{response}");
                }
            }
            Assert.True(failures.Count == 0, string.Join("\n\n", failures));
        }
        finally
        {
            fixture.Answer(Answer.Ok);
        }
    }

    /// <summary>
    /// Heads RFC 9110 §5.5 and RFC 9112 §5.1–§5.2 let a proxy either refuse (502) or repair: NUL or a
    /// bare CR in a value, obs-fold, whitespace before the colon. The fast path refuses them;
    /// SocketsHttpHandler repairs them before the general path sees the head, so there the raw bytes
    /// are gone. Either way the client never receives them as sent.
    /// </summary>
    [Theory]
    [InlineData("nul-in-value", "HTTP/1.1 200 OK\r\nX-B: a\u0000b\r\nContent-Length: 2\r\n\r\nok")]
    [InlineData("bare-cr-in-value", "HTTP/1.1 200 OK\r\nX-B: a\rb\r\nContent-Length: 2\r\n\r\nok")]
    [InlineData("obs-fold", "HTTP/1.1 200 OK\r\nX-B: a\r\n b\r\nContent-Length: 2\r\n\r\nok")]
    [InlineData("space-before-colon", "HTTP/1.1 200 OK\r\nX-B : 1\r\nContent-Length: 2\r\n\r\nok")]
    public async Task A_repairable_backend_head_is_refused_or_repaired_never_relayed_as_sent(string name, string answer)
    {
        fixture.Answer(Answer.Of(answer));
        try
        {
            foreach (var (variant, gateway, _) in fixture.Gateways)
            {
                await using var connection = await RawConnection.OpenAsync(gateway.Port);
                await connection.WriteAsync("GET /svc/m/head HTTP/1.1\nHost: gw\nConnection: close");
                var (bytes, _) = await connection.ReadUntilClosedAsync();
                var text = Encoding.Latin1.GetString(bytes);
                output.WriteLine($"{name} {variant.Name}: {text.Split("\r\n")[0]}");
                var head = text[..Math.Max(0, text.IndexOf("\r\n\r\n", StringComparison.Ordinal))];
                Assert.True(text.StartsWith("HTTP/1.1 502 ", StringComparison.Ordinal) || text.StartsWith("HTTP/1.1 200 ", StringComparison.Ordinal), $"{variant.Name}:\n{text}");
                Assert.True(head.Replace("\r\n", "\n", StringComparison.Ordinal).IndexOfAny(['\0', '\r']) < 0, $"{variant.Name} relayed a NUL or bare CR:\n{text}");
                Assert.False(head.Contains("\r\n ", StringComparison.Ordinal) || head.Contains("X-B :", StringComparison.Ordinal), $"{variant.Name} relayed the head as sent:\n{text}");
                if (variant.FastPath)
                {
                    Assert.True(text.StartsWith("HTTP/1.1 502 ", StringComparison.Ordinal), $"{variant.Name}:\n{text}");
                }
            }
        }
        finally
        {
            fixture.Answer(Answer.Ok);
        }
    }

    /// <summary>One framing field: the given Content-Length (exactly, so recomputed), or chunked when null.</summary>
    private static void Framing(RawResponse response, string? contentLength)
    {
        if (contentLength is null)
        {
            Assert.Equal("chunked", response.Header("Transfer-Encoding"));
            Assert.False(response.HasHeader("Content-Length"), response.ToString());
        }
        else
        {
            Assert.Equal(contentLength, response.Header("Content-Length"));
            Assert.False(response.HasHeader("Transfer-Encoding"), response.ToString());
        }
        Assert.Equal("ok", response.BodyText);
    }

    private static void NotRelayed(RawResponse response, string name)
    {
        Assert.False(response.HasHeader(name), response.ToString());
        Assert.Equal("2", response.Header("X-Kept"));
    }
}
