using System.Net.Sockets;
using System.Text;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Foundation;

/// <summary>The classes that share one <see cref="StrictnessFixture"/> (four gateways): they run one after the other.</summary>
[CollectionDefinition(Name)]
public sealed class StrictnessCollection : ICollectionFixture<StrictnessFixture>
{
    public const string Name = "strictness";
}

/// <summary>
/// "Never laxer than Kestrel, on any path": every request of <see cref="RequestCorpus"/> goes, byte for
/// byte, to the same gateway on each path and transport (<see cref="GatewayVariant"/>), and every
/// variant must give the same status class and put the same request on the wire upstream; a request
/// the general path's Kestrel refuses by itself is refused by the fast path too; and each case's
/// fixed outcome (relayed, or refused with nothing sent upstream) holds everywhere.
/// </summary>
[Collection(StrictnessCollection.Name)]
public sealed class DifferentialTests(StrictnessFixture fixture, ITestOutputHelper output)
{
    private static readonly TimeSpan ExchangeTimeout = TimeSpan.FromSeconds(8);

    [Theory]
    [MemberData(nameof(RequestCorpus.Names), MemberType = typeof(RequestCorpus))]
    public async Task Every_path_answers_a_request_alike(string name)
    {
        var c = RequestCorpus.Get(name);
        fixture.Answer(Answer.Ok);

        var results = await Task.WhenAll(fixture.Gateways.Select(g => RunAsync(g.Variant, g.Gateway.Port, g.Backend, c.Raw)));

        var table = string.Join("\n", results.Select(r => r.ToString()));
        output.WriteLine($"{name}: {string.Join(" | ", results.Select(r => $"{r.Variant.Name} {r.Status}{(r.Upstream.Count > 0 ? " upstream" : "")}"))}");
        var failures = new List<string>();
        var reference = results[0];
        foreach (var result in results.Skip(1))
        {
            if (result.StatusClass != reference.StatusClass)
            {
                failures.Add($"{result.Variant.Name} answered {result.Status}, {reference.Variant.Name} {reference.Status}");
            }
            if (!result.Upstream.SequenceEqual(reference.Upstream))
            {
                failures.Add($"{result.Variant.Name} sent upstream what {reference.Variant.Name} did not");
            }
        }
        foreach (var general in results.Where(r => !r.Variant.FastPath && r.RefusedByKestrel))
        {
            foreach (var fast in results.Where(r => r.Variant.FastPath && (r.StatusClass != 4 || r.Upstream.Count > 0)))
            {
                failures.Add($"Kestrel refused it on {general.Variant.Name} ({general.Status}) but {fast.Variant.Name} did not ({fast.Status})");
            }
        }
        foreach (var result in results)
        {
            switch (c.Outcome)
            {
                case Outcome.Forwarded when result.StatusClass != 2 || result.Upstream.Count != 1:
                    failures.Add($"{result.Variant.Name}: expected it relayed (2xx, one request upstream), got {result.Status} and {result.Upstream.Count} upstream");
                    break;
                case Outcome.Refused when result.StatusClass != 4 || result.Upstream.Count != 0:
                    failures.Add($"{result.Variant.Name}: expected a 4xx with nothing upstream, got {result.Status} and {result.Upstream.Count} upstream");
                    break;
            }
            foreach (var field in c.NotForwarded)
            {
                if (result.Upstream.Any(u => u.Contains("\n" + field + ":", StringComparison.Ordinal)))
                {
                    failures.Add($"{result.Variant.Name} forwarded {field}");
                }
            }
        }
        Assert.True(failures.Count == 0, $"{name}:\n  {string.Join("\n  ", failures)}\n\n{table}");
    }

    private static async Task<Result> RunAsync(GatewayVariant variant, int port, RecordingBackend backend, byte[] raw)
    {
        backend.Take();   // nothing left over from an earlier case
        var (status, refusedByKestrel) = await ExchangeAsync(port, raw);
        // The backend answered before the gateway did, so by now every request it got is recorded.
        var upstream = backend.Take().Select(m => Normalize(m, new Uri(backend.Url).Authority)).ToList();
        return new Result(variant, status, refusedByKestrel, upstream);
    }

    /// <summary>The final status of the first response (interim 1xx skipped); 0 when the gateway closed without one, -1 on timeout.</summary>
    internal static async Task<(int Status, bool RefusedByKestrel)> ExchangeAsync(int port, byte[] raw)
    {
        using var cancel = new CancellationTokenSource(ExchangeTimeout);
        using var client = new TcpClient(AddressFamily.InterNetwork) { NoDelay = true };
        try
        {
            await client.ConnectAsync(System.Net.IPAddress.Loopback, port, cancel.Token);
            var stream = client.GetStream();
            await stream.WriteAsync(raw, cancel.Token);
            var reader = new RawHttp.BufferedReader(stream);
            var isHead = raw.AsSpan().StartsWith("HEAD "u8);
            for (var interim = 0; interim < 5; interim++)
            {
                var response = await RawHttp.ReadResponseAsync(reader, isHead, closing: false, cancel.Token);
                if (response.Status is >= 100 and < 200 and not 101)
                {
                    continue;
                }
                // Kestrel's own rejections carry no X-Request-ID: the dispatcher sets one on every answer it writes.
                return (response.Status, response.Status is >= 400 and < 500 && !response.HasHeader("X-Request-ID"));
            }
            return (0, false);
        }
        catch (OperationCanceledException)
        {
            return (-1, false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or FormatException)
        {
            return (0, false);
        }
    }

    /// <summary>
    /// A request as the backend got it, with what may legitimately differ between the two upstream
    /// clients taken out: field names lower-cased (case-insensitive, RFC 9110 §5.1); fields ordered
    /// by name, and the lines of one name joined with ", " ("; " for Cookie), as RFC 9110 §5.3 allows
    /// a sender to reorder different names and combine lines of one (SocketsHttpHandler does both);
    /// an X-Request-ID the gateway generated (32 hex digits, fresh per request, so never equal
    /// between two requests) replaced by a placeholder; and Host, the backend's own authority, whose
    /// port differs because each variant has a recording backend of its own. The request line, every
    /// other value and the body stay byte for byte; X-Forwarded-For and X-Real-IP need nothing, as
    /// every gateway is reached from 127.0.0.1 and the forwarding fields carry no port.
    /// </summary>
    internal static string Normalize(byte[] message, string backendAuthority)
    {
        var headEnd = message.AsSpan().IndexOf("\r\n\r\n"u8);
        var lines = Encoding.Latin1.GetString(message, 0, headEnd).Split("\r\n");
        var fields = new List<(string Name, string Value)>();
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':');
            var name = line[..colon].ToLowerInvariant();
            var value = line[(colon + 1)..].Trim(' ', '\t');
            if (name == "x-request-id" && value.Length == 32 && value.All(char.IsAsciiHexDigitLower))
            {
                value = "<generated>";
            }
            else if (name == "host" && value == backendAuthority)
            {
                value = "<backend>";
            }
            fields.Add((name, value));
        }
        var text = new StringBuilder(Escape(lines[0])).Append('\n');
        foreach (var group in fields.GroupBy(f => f.Name).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            text.Append(group.Key).Append(": ").Append(Escape(string.Join(group.Key == "cookie" ? "; " : ", ", group.Select(f => f.Value)))).Append('\n');
        }
        return text.Append('\n').Append(Escape(Encoding.Latin1.GetString(message, headEnd + 4, message.Length - headEnd - 4))).ToString();
    }

    private static string Escape(string text)
    {
        var escaped = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            escaped.Append(c is >= ' ' and < '\u007f' ? c.ToString() : $"\\x{(int)c:x2}");
        }
        return escaped.ToString();
    }

    private sealed record Result(GatewayVariant Variant, int Status, bool RefusedByKestrel, List<string> Upstream)
    {
        public int StatusClass => Status <= 0 ? Status : Status / 100;

        public override string ToString()
            => $"--- {Variant.Name}: {(Status == 0 ? "closed without an answer" : Status < 0 ? "no answer (timeout)" : Status.ToString())}"
                + (RefusedByKestrel ? " (Kestrel)" : "")
                + (Upstream.Count == 0 ? ", nothing upstream" : "\n" + string.Join("\n~~~\n", Upstream));
    }
}
