using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Hosting;

/// <summary>
/// `edgeproxy --demo`: mock LLM backends on the config's loopback URLs, reached through the gateway
/// with the demo key; a chat completion whole and streamed, a text completion, the model list.
/// </summary>
public sealed class DemoModeTests
{
    [Fact]
    public async Task Demo_mode_serves_mock_completions_through_the_gateway()
    {
        var port = FreePort.Get();
        await using var gateway = await GatewayProcess.StartAsync(BackendsJson.For("svc", "m", ("b1", $"http://127.0.0.1:{port}", 1)), args: ["--demo"]);
        await gateway.Output.WaitForLineAsync(l => l.Contains("Demo mode: dashboard", StringComparison.Ordinal), TimeSpan.FromSeconds(10));

        using (var chat = JsonDocument.Parse(await PostAsync(gateway, "/svc/m/v1/chat/completions", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}")))
        {
            var root = chat.RootElement;
            Assert.Equal("chat.completion", root.GetProperty("object").GetString());
            Assert.Equal("m", root.GetProperty("model").GetString());
            var choice = root.GetProperty("choices")[0];
            Assert.Equal(0, choice.GetProperty("index").GetInt32());
            Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
            Assert.StartsWith("Hello from b1!", choice.GetProperty("message").GetProperty("content").GetString());
            Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
            var usage = root.GetProperty("usage");
            Assert.Equal(12, usage.GetProperty("completion_tokens").GetInt32());
            Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + 12, usage.GetProperty("total_tokens").GetInt32());
        }

        using (var text = JsonDocument.Parse(await PostAsync(gateway, "/svc/m/v1/completions", "{\"model\":\"m\",\"prompt\":\"Hello\"}")))
        {
            Assert.Equal("text_completion", text.RootElement.GetProperty("object").GetString());
            Assert.StartsWith("Hello from b1!", text.RootElement.GetProperty("choices")[0].GetProperty("text").GetString());
        }

        var events = (await PostAsync(gateway, "/svc/m/v1/chat/completions", "{\"model\":\"m\",\"stream\":true,\"messages\":[]}"))
            .Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.Equal(13, chunks.Count);   // one per word, then the finish
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.Equal("assistant", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        Assert.Equal(JsonValueKind.Null, chunks[0].GetProperty("choices")[0].GetProperty("finish_reason").ValueKind);
        Assert.Equal("Hello from b1! This answer was streamed token by token through EdgeProxy.",
            string.Concat(chunks[..^1].Select(c => c.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString())));
        Assert.False(chunks[0].TryGetProperty("usage", out _));
        Assert.Equal("stop", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(12, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        using var request = new HttpRequestMessage(HttpMethod.Get, gateway.BaseUrl + "/svc/m/v1/models");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "demo-key");
        using var models = await gateway.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        using var list = JsonDocument.Parse(await models.Content.ReadAsStringAsync());
        Assert.Equal("m", list.RootElement.GetProperty("data")[0].GetProperty("id").GetString());
    }

    private static async Task<string> PostAsync(GatewayProcess gateway, string path, string json)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, gateway.BaseUrl + path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "demo-key");
        using var response = await gateway.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("b1", response.Headers.GetValues("X-Backend-Id"));
        return await response.Content.ReadAsStringAsync();
    }
}
