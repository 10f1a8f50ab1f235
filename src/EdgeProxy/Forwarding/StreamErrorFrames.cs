using System.Text.Json;

namespace EdgeProxy.Forwarding;

/// <summary>The last frame a client sees when a stream breaks after it started.</summary>
internal static class StreamErrorFrames
{
    public static byte[] Sse(ForwarderError error, string requestId) => SseEvent("error"u8, Json(error, requestId));

    /// <summary>One server-sent event: `event: {name}\ndata: {json}\n\n` (the JSON must be one line).</summary>
    public static byte[] SseEvent(ReadOnlySpan<byte> name, ReadOnlySpan<byte> json)
    {
        var frame = new byte["event: "u8.Length + name.Length + "\ndata: "u8.Length + json.Length + 2];
        var span = frame.AsSpan();
        "event: "u8.CopyTo(span);
        span = span["event: "u8.Length..];
        name.CopyTo(span);
        span = span[name.Length..];
        "\ndata: "u8.CopyTo(span);
        span = span["\ndata: "u8.Length..];
        json.CopyTo(span);
        "\n\n"u8.CopyTo(span[json.Length..]);
        return frame;
    }

    public static byte[] Ndjson(ForwarderError error, string requestId)
    {
        var json = Json(error, requestId);
        var frame = new byte[json.Length + 1];
        json.CopyTo(frame, 0);
        frame[^1] = (byte)'\n';
        return frame;
    }

    private static byte[] Json(ForwarderError error, string requestId)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            writer.WriteStartObject("error");
            writer.WriteString("message", ForwarderErrors.Message(error));
            writer.WriteString("type", "upstream_error");
            writer.WriteString("code", ForwarderErrors.Code(error));
            writer.WriteString("request_id", requestId);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }
}
