using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using EdgeProxy.Configuration;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace EdgeProxy.Hosting.Demo;

/// <summary>
/// Demo mode's in-process mock LLM backends: one Kestrel listener per loopback backend URL in the
/// config, each speaking enough of the OpenAI API (`/v1/models`, `/v1/chat/completions` as JSON or
/// SSE, `/v1/completions`, `/health`) that the dashboard turns green and a streamed completion can be
/// curled at once. Tokens arrive with a small delay, like a real model.
/// </summary>
internal sealed class MockLlmBackends(WebApplication app, Dictionary<int, (string Id, string Model)> byPort) : IAsyncDisposable
{
    public static async Task<MockLlmBackends> StartAsync(BackendsConfig config)
    {
        // Every backend whose URL is http on a loopback address with a port; the first one on a port answers there.
        var targets = config.Services.SelectMany(service => service.Models)
            .SelectMany(model => model.Backends.Select(backend => (Backend: backend, Model: model.Name, Uri: new Uri(backend.Url))))
            .Where(t => t.Uri.Scheme == Uri.UriSchemeHttp && t.Uri.IsLoopback && !t.Uri.IsDefaultPort)
            .DistinctBy(t => t.Uri.Port)
            .ToDictionary(t => t.Uri.Port, t => (t.Backend.Id, t.Model));
        if (targets.Count == 0)
        {
            throw new InvalidOperationException("demo mode needs backends with loopback URLs (http://127.0.0.1:PORT) in the config.");
        }
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(options =>
        {
            options.AddServerHeader = false;
            foreach (var port in targets.Keys)
            {
                options.Listen(IPAddress.Loopback, port);
            }
        });
        var app = builder.Build();
        var mocks = new MockLlmBackends(app, targets);
        app.Run(mocks.HandleAsync);
        await app.StartAsync().ConfigureAwait(false);
        return mocks;
    }

    private Task HandleAsync(HttpContext context)
    {
        var (id, model) = byPort.TryGetValue(context.Connection.LocalPort, out var who) ? who : ("mock", "mock-model");
        context.Response.Headers["X-Backend-Id"] = id;
        var path = context.Request.Path.Value ?? "/";
        return path switch
        {
            "/health" => JsonAsync(context, w => { w.WriteString("status", "ok"); w.WriteString("backend", id); }),
            "/v1/models" => JsonAsync(context, w =>
            {
                w.WriteString("object", "list");
                w.WriteStartArray("data");
                w.WriteStartObject();
                w.WriteString("id", model);
                w.WriteString("object", "model");
                w.WriteString("owned_by", "edgeproxy-demo");
                w.WriteEndObject();
                w.WriteEndArray();
            }),
            "/v1/chat/completions" or "/v1/completions" or "/" => CompletionAsync(context, id, model, chat: path != "/v1/completions"),
            _ => JsonAsync(context, w => w.WriteString("error", "not found"), status: 404),
        };
    }

    private static async Task CompletionAsync(HttpContext context, string id, string model, bool chat)
    {
        var stream = false;
        var prompt = "";
        if (HttpMethods.IsPost(context.Request.Method))
        {
            try
            {
                using var doc = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted).ConfigureAwait(false);
                var root = doc.RootElement;
                stream = root.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
                if (root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String)
                {
                    model = m.GetString()!;
                }
                prompt = root.TryGetProperty("messages", out var msgs) ? msgs.GetRawText() : root.TryGetProperty("prompt", out var p) ? p.GetRawText() : "";
            }
            catch (JsonException)
            {
                await JsonAsync(context, w => w.WriteString("error", "invalid JSON body"), status: 400).ConfigureAwait(false);
                return;
            }
        }
        var answer = new MockAnswer(
            Words: $"Hello from {id}! This answer was streamed token by token through EdgeProxy.".Split(' '),
            PromptTokens: Math.Max(1, prompt.Length / 4),
            Id: "chatcmpl-" + Guid.NewGuid().ToString("N")[..12],
            Created: DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            Model: model);
        await (stream ? StreamAnswerAsync(context, answer) : WriteWholeAnswerAsync(context, answer, chat)).ConfigureAwait(false);
    }

    /// <summary>One mock answer; a streamed one repeats its id, creation time and model in every chunk.</summary>
    private readonly record struct MockAnswer(string[] Words, int PromptTokens, string Id, long Created, string Model);

    /// <summary>The whole answer as one JSON body, sent after 10 ms per word.</summary>
    private static async Task WriteWholeAnswerAsync(HttpContext context, MockAnswer answer, bool chat)
    {
        var text = string.Join(' ', answer.Words);
        await Task.Delay(answer.Words.Length * 10, context.RequestAborted).ConfigureAwait(false);
        await JsonAsync(context, w => WriteCompletion(w, answer, chat ? "chat.completion" : "text_completion", withUsage: true, choice: w =>
        {
            if (chat)
            {
                w.WriteStartObject("message");
                w.WriteString("role", "assistant");
                w.WriteString("content", text);
                w.WriteEndObject();
            }
            else
            {
                w.WriteString("text", text);
            }
            w.WriteString("finish_reason", "stop");
        })).ConfigureAwait(false);
    }

    /// <summary>The answer as server-sent events: one chunk per word, a final chunk with the usage, then [DONE].</summary>
    private static async Task StreamAnswerAsync(HttpContext context, MockAnswer answer)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        await context.Response.StartAsync(context.RequestAborted).ConfigureAwait(false);
        for (var i = 0; i <= answer.Words.Length; i++)
        {
            var chunk = StreamChunk(answer, i);
            await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes("data: " + chunk + "\n\n"), context.RequestAborted).ConfigureAwait(false);
            await Task.Delay(40, context.RequestAborted).ConfigureAwait(false);
        }
        await context.Response.Body.WriteAsync("data: [DONE]\n\n"u8.ToArray(), context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Chunk <paramref name="i"/> of the stream: word i as the delta, or, past the last word, the finish reason and usage.</summary>
    private static string StreamChunk(MockAnswer answer, int i)
    {
        var last = i == answer.Words.Length;
        return Json(w => WriteCompletion(w, answer, "chat.completion.chunk", withUsage: last, choice: w =>
        {
            w.WriteStartObject("delta");
            if (!last)
            {
                if (i == 0)
                {
                    w.WriteString("role", "assistant");
                }
                w.WriteString("content", (i == 0 ? "" : " ") + answer.Words[i]);
            }
            w.WriteEndObject();
            if (last)
            {
                w.WriteString("finish_reason", "stop");
            }
            else
            {
                w.WriteNull("finish_reason");
            }
        }));
    }

    /// <summary>What an answer and each chunk share: id, object, creation time and model around the one choice, then the usage if asked.</summary>
    private static void WriteCompletion(Utf8JsonWriter w, MockAnswer answer, string objectName, bool withUsage, Action<Utf8JsonWriter> choice)
    {
        w.WriteString("id", answer.Id);
        w.WriteString("object", objectName);
        w.WriteNumber("created", answer.Created);
        w.WriteString("model", answer.Model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        choice(w);
        w.WriteEndObject();
        w.WriteEndArray();
        if (withUsage)
        {
            w.WriteStartObject("usage");
            w.WriteNumber("prompt_tokens", answer.PromptTokens);
            w.WriteNumber("completion_tokens", answer.Words.Length);
            w.WriteNumber("total_tokens", answer.PromptTokens + answer.Words.Length);
            w.WriteEndObject();
        }
    }

    private static string Json(Action<Utf8JsonWriter> body)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(512);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            body(writer);
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static Task JsonAsync(HttpContext context, Action<Utf8JsonWriter> body, int status = 200)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        var bytes = Encoding.UTF8.GetBytes(Json(body));
        context.Response.ContentLength = bytes.Length;
        return context.Response.Body.WriteAsync(bytes, context.RequestAborted).AsTask();
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync().ConfigureAwait(false);
        await app.DisposeAsync().ConfigureAwait(false);
    }
}
