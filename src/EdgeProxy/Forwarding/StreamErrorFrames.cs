using System.Text.Json;

namespace EdgeProxy.Forwarding;

/// <summary>The last frame a client sees when a stream breaks after it started.</summary>
internal static class StreamErrorFrames
{
    public static byte[] Sse(ForwarderError error, string requestId)
    {
        var json = Json(error, requestId);
        var prefix = "event: error\ndata: "u8;
        var frame = new byte[prefix.Length + json.Length + 2];
        prefix.CopyTo(frame);
        json.CopyTo(frame, prefix.Length);
        "\n\n"u8.CopyTo(frame.AsSpan(prefix.Length + json.Length));
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
