using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace EdgeProxy.TestBackend;

// Wire shapes. Property names come out snake_case through the naming policy on BackendJson;
// the few names the policy would not produce by itself are pinned with [JsonPropertyName].

internal sealed record HealthBody(string Status, string Id);

internal sealed record HealthConfigBody(int Status, int DelayMs);

internal sealed record EchoBody(
    string Id,
    string Method,
    string Path,
    string RawTarget,
    string Query,
    string Protocol,
    string ConnectionId,
    Dictionary<string, string[]> Headers,
    long BodyLength,
    [property: JsonPropertyName("body_sha256")] string BodySha256);

internal sealed record UploadBody(
    string Id,
    long BodyLength,
    [property: JsonPropertyName("body_sha256")] string BodySha256);

/// <summary>Payload of one /sse, /sse-gated, /ndjson, /hang-stream, /sse-forever event.</summary>
internal sealed record StreamEvent(int I, long SentAtTicks, string Id);

internal sealed record ErrorBody(string Error);

internal sealed record NotFoundBody(string Id, string Error, string Path);

internal sealed record StatusBody(string Id, int Status);

internal sealed record AckBody(string Gate, long Acked);

internal sealed record StatsBody(
    string Id,
    long Requests,
    long HealthChecks,
    long InFlight,
    Dictionary<string, long> Aborted,
    Dictionary<string, long> LastAbortTicks,
    Dictionary<string, long> ByPath,
    long StopwatchFrequency);

// ---- OpenAI-compatible shapes ----

internal sealed class ChatRequest
{
    public string? Model { get; set; }
    public List<ChatRequestMessage>? Messages { get; set; }
    public bool Stream { get; set; }
    public int? MaxTokens { get; set; }
}

internal sealed class ChatRequestMessage
{
    public string? Role { get; set; }

    /// <summary>A string, or an array of content parts ({"type":"text","text":...}); kept raw.</summary>
    public JsonElement Content { get; set; }
}

internal sealed record ChatCompletion(
    string Id, string Object, long Created, string Model, ChatChoice[] Choices, Usage Usage);

internal sealed record ChatChoice(int Index, ChatMessage Message, string FinishReason);

internal sealed record ChatMessage(string Role, string Content);

internal sealed record ChatChunk(
    string Id,
    string Object,
    long Created,
    string Model,
    ChunkChoice[] Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Usage? Usage);

/// <summary>finish_reason is written as null on every chunk but the last, like OpenAI does.</summary>
internal sealed record ChunkChoice(int Index, ChunkDelta Delta, string? FinishReason);

internal sealed record ChunkDelta(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Role,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Content);

internal sealed record Usage(int PromptTokens, int CompletionTokens, int TotalTokens);

internal sealed record ModelList(string Object, ModelInfo[] Data);

internal sealed record ModelInfo(string Id, string Object, string OwnedBy);

internal sealed record OpenAiError(OpenAiErrorDetail Error);

internal sealed record OpenAiErrorDetail(string Message, string Type);

/// <summary>Source-generated metadata: no reflection-based serialization anywhere in the backend.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(HealthBody))]
[JsonSerializable(typeof(HealthConfigBody))]
[JsonSerializable(typeof(EchoBody))]
[JsonSerializable(typeof(UploadBody))]
[JsonSerializable(typeof(StreamEvent))]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(NotFoundBody))]
[JsonSerializable(typeof(StatusBody))]
[JsonSerializable(typeof(AckBody))]
[JsonSerializable(typeof(StatsBody))]
[JsonSerializable(typeof(ChatRequest))]
[JsonSerializable(typeof(ChatCompletion))]
[JsonSerializable(typeof(ChatChunk))]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(OpenAiError))]
internal sealed partial class BackendJson : JsonSerializerContext
{
    /// <summary>
    /// The metadata to use: like Default but without HTML-safe escaping, so '&amp;', '+', '&lt;' in echoed
    /// paths and queries appear as-is in the JSON text rather than as \u0026 and friends.
    /// </summary>
    public static BackendJson Relaxed { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, // same as the attribute above
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
