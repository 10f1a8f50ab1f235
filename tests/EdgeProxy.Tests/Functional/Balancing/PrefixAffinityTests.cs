using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using EdgeProxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace EdgeProxy.Tests.Functional.Balancing;

/// <summary>
/// Affinity "prefix": a conversation's turns go to one backend, keyed by its opening (system prompt
/// and first question) read from the body, so many conversations from one client address spread
/// over the fleet; the body still arrives whole and unchanged, whatever its size.
/// </summary>
[Trait(Matrix.Trait, Matrix.Rerun)]
public sealed class PrefixAffinityTests(ITestOutputHelper output)
{
    private const int Conversations = 24;
    private const int Turns = 4;

    /// <summary>System prompts the conversations share (a new conversation is placed by its system prompt).</summary>
    private const int Personas = 8;

    private static readonly string SharedSystem = "You are a helpful assistant. " + string.Concat(Enumerable.Repeat("Keep answers short. ", 30));

    private static readonly Dictionary<string, string> Environment = new() { ["LOG_LEVEL"] = "WARNING" };

    private static string Config(BackendProcess[] backends, string? affinity)
        => BackendsJson.For("svc", "m", backends.Select(b => BackendsJson.Backend(b.Id, b.Url)).ToArray(),
            affinity is null ? null : new JsonObject { ["affinity"] = affinity });

    /// <summary>Turn <paramref name="turn"/> of conversation <paramref name="n"/>: the shared system prompt, its own first question, the turns so far.</summary>
    private static byte[] ChatBody(int n, int turn)
    {
        var messages = new JsonArray
        {
            new JsonObject { ["role"] = "system", ["content"] = SharedSystem + $" You are persona {n % Personas}." },
            new JsonObject { ["role"] = "user", ["content"] = $"Conversation {n}: tell me about topic {n * 7919 % 1000}." },
        };
        for (var t = 1; t <= turn; t++)
        {
            // Every other conversation grows past the gateway's 16 KiB read-ahead by its last turn.
            messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = new string((char)('a' + t), n % 2 == 0 ? 6000 : 200) });
            messages.Add(new JsonObject { ["role"] = "user", ["content"] = $"Follow-up {t}?" });
        }
        return Encoding.UTF8.GetBytes(new JsonObject { ["model"] = "m", ["stream"] = false, ["messages"] = messages }.ToJsonString());
    }

    private static async Task<string> PostAsync(HttpClient client, GatewayProcess gateway, byte[] body, string contentType = "application/json")
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
        using var response = await client.PostAsync($"{gateway.BaseUrl}/svc/m/echo", content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        using var echo = JsonDocument.Parse(text);
        Assert.Equal(body.Length, echo.RootElement.GetProperty("body_length").GetInt64());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(body)), echo.RootElement.GetProperty("body_sha256").GetString());
        return echo.RootElement.GetProperty("id").GetString()!;
    }

    /// <summary>Also with no balancing fields at all: prefix affinity is the default.</summary>
    [Theory]
    [InlineData("prefix")]
    [InlineData(null)]
    public async Task Each_conversation_sticks_to_one_backend_and_conversations_from_one_address_spread(string? affinity)
    {
        var backends = new BackendProcess[4];
        for (var i = 0; i < backends.Length; i++)
        {
            backends[i] = await BackendProcess.StartAsync($"b{i + 1}");
        }
        try
        {
            await using var gateway = await GatewayProcess.StartAsync(Config(backends, affinity), Environment);
            var client = gateway.Client;   // every request from one address, as behind one app server
            var homes = new string[Conversations];
            for (var turn = 0; turn < Turns; turn++)
            {
                for (var n = 0; n < Conversations; n++)
                {
                    var id = await PostAsync(client, gateway, ChatBody(n, turn));
                    if (turn == 0)
                    {
                        homes[n] = id;
                    }
                    Assert.True(homes[n] == id, $"conversation {n} turn {turn} went to {id}, its earlier turns to {homes[n]}");
                }
            }
            Assert.True(ChatBody(0, Turns - 1).Length > 16 * 1024, "the long conversations pass the read-ahead");
            var spread = homes.GroupBy(h => h).ToDictionary(g => g.Key, g => g.Count());
            output.WriteLine("conversations per backend: " + string.Join(", ", spread.OrderBy(p => p.Key).Select(p => $"{p.Key}={p.Value}")));
            Assert.True(spread.Count >= 3, "24 conversations with 8 system prompts from one address used fewer than 3 of 4 backends");

            // A body without a conversation keys by the client, as client_ip affinity does.
            var plain = new HashSet<string>();
            for (var i = 0; i < 8; i++)
            {
                plain.Add(await PostAsync(client, gateway, Encoding.ASCII.GetBytes($"not json {i}"), "text/plain"));
            }
            Assert.Single(plain);

            // A second gateway with the same config agrees on every conversation (no shared state).
            await using var twin = await GatewayProcess.StartAsync(Config(backends, affinity), Environment);
            for (var n = 0; n < Conversations; n++)
            {
                Assert.Equal(homes[n], await PostAsync(twin.Client, twin, ChatBody(n, Turns)));
            }
        }
        finally
        {
            foreach (var backend in backends)
            {
                await backend.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_body_that_stops_during_the_read_ahead_is_the_clients_fault()
    {
        await using var backend = await BackendProcess.StartAsync("b1");
        await using var gateway = await GatewayProcess.StartAsync(Config([backend], "prefix"),
            new Dictionary<string, string> { ["CLIENT_BODY_TIMEOUT"] = "1", ["PASSIVE_FAILURE_THRESHOLD"] = "1" });
        await using var connection = await RawConnection.OpenAsync(gateway.Port);
        await connection.WriteAsync("POST /svc/m/echo HTTP/1.1\nHost: gw\nContent-Type: application/json\nContent-Length: 5000\n\n{\"messages\":[");
        var response = await connection.ReadResponseAsync();
        Assert.True(response.Status == 408, response.ToString());
        Assert.Contains("client_body_timeout", response.BodyText);
        // The backend was not blamed: it serves the next request.
        Assert.Equal("b1", await PostAsync(gateway.Client, gateway, ChatBody(1, 0)));
    }
}
