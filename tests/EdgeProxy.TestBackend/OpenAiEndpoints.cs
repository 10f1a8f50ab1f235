using System.Text.Json;

namespace EdgeProxy.TestBackend;

/// <summary>
/// Just enough of the OpenAI API for a gateway in front of it: deterministic answers, one word per
/// streamed chunk, usage counted in words ("tokens") so tests can predict every number.
/// </summary>
internal sealed class OpenAiEndpoints(BackendState state)
{
    private const string DefaultModel = "test-model";
    private long _completionSeq;

    public Task Models(HttpContext ctx) => Wire.WriteJsonAsync(
        ctx,
        new ModelList("list", [new ModelInfo(DefaultModel, "model", "edgeproxy-test")]),
        BackendJson.Relaxed.ModelList);

    public async Task ChatCompletions(HttpContext ctx)
    {
        ChatRequest? request;
        try
        {
            request = await JsonSerializer.DeserializeAsync(ctx.Request.Body, BackendJson.Relaxed.ChatRequest, ctx.RequestAborted);
        }
        catch (JsonException ex)
        {
            await InvalidRequestAsync(ctx, "invalid JSON body: " + ex.Message);
            return;
        }

        if (request?.Messages is not { Count: > 0 })
        {
            await InvalidRequestAsync(ctx, "messages is required");
            return;
        }

        string model = string.IsNullOrEmpty(request.Model) ? DefaultModel : request.Model;
        string completionId = $"chatcmpl-{state.Id}-{Interlocked.Increment(ref _completionSeq)}";
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        int promptTokens = CountPromptWords(request.Messages);

        string answer = request.Stream
            ? $"Hello from {state.Id}! This is a streamed answer."
            : $"Hello from {state.Id}! This is a test answer.";
        string[] words = answer.Split(' ');
        string finishReason = "stop";
        if (request.MaxTokens is int max && max >= 0 && max < words.Length)
        {
            words = words[..max];
            finishReason = "length";
        }

        var usage = new Usage(promptTokens, words.Length, promptTokens + words.Length);

        if (!request.Stream)
        {
            var completion = new ChatCompletion(
                completionId,
                "chat.completion",
                created,
                model,
                [new ChatChoice(0, new ChatMessage("assistant", string.Join(' ', words)), finishReason)],
                usage);
            await Wire.WriteJsonAsync(ctx, completion, BackendJson.Relaxed.ChatCompletion);
            return;
        }

        int delayMs = Wire.QueryInt(ctx, "delayMs", 5, 0, 600_000);
        CancellationToken ct = ctx.RequestAborted;
        Wire.StartEventStream(ctx.Response);
        await ctx.Response.StartAsync(ct);

        for (int k = 0; k < words.Length; k++)
        {
            if (k > 0 && delayMs > 0)
            {
                await Task.Delay(delayMs, ct);
            }

            // Leading space on every word but the first, so the deltas concatenate to the full answer.
            var delta = new ChunkDelta(k == 0 ? "assistant" : null, k == 0 ? words[k] : " " + words[k]);
            await SendChunkAsync(ctx, new ChatChunk(completionId, "chat.completion.chunk", created, model, [new ChunkChoice(0, delta, null)], null));
        }

        // Final chunk carries finish_reason and usage (what OpenAI sends with stream_options.include_usage).
        var last = new ChatChunk(completionId, "chat.completion.chunk", created, model, [new ChunkChoice(0, new ChunkDelta(null, null), finishReason)], usage);
        await SendChunkAsync(ctx, last);
        await Wire.SendDoneAsync(ctx.Response, ct);
    }

    private static Task SendChunkAsync(HttpContext ctx, ChatChunk chunk) => Wire.SendAsync(
        ctx.Response,
        Wire.SseFrame(JsonSerializer.SerializeToUtf8Bytes(chunk, BackendJson.Relaxed.ChatChunk)),
        ctx.RequestAborted);

    private static Task InvalidRequestAsync(HttpContext ctx, string message) => Wire.WriteJsonAsync(
        ctx,
        new OpenAiError(new OpenAiErrorDetail(message, "invalid_request_error")),
        BackendJson.Relaxed.OpenAiError,
        StatusCodes.Status400BadRequest);

    /// <summary>Whitespace-separated words over all message texts (string content or text parts).</summary>
    private static int CountPromptWords(List<ChatRequestMessage> messages)
    {
        int words = 0;
        foreach (ChatRequestMessage message in messages)
        {
            JsonElement content = message.Content;
            if (content.ValueKind == JsonValueKind.String)
            {
                words += CountWords(content.GetString());
            }
            else if (content.ValueKind == JsonValueKind.Array)
            {
                foreach (JsonElement part in content.EnumerateArray())
                {
                    if (part.ValueKind == JsonValueKind.Object
                        && part.TryGetProperty("text", out JsonElement text)
                        && text.ValueKind == JsonValueKind.String)
                    {
                        words += CountWords(text.GetString());
                    }
                }
            }
        }

        return words;
    }

    private static int CountWords(string? text) =>
        text?.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length ?? 0;
}
