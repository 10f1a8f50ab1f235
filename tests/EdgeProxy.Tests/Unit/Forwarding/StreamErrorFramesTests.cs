using System.Text;
using System.Text.Json;
using EdgeProxy.Forwarding;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>The last frame of a broken stream: a valid SSE event / NDJSON line a client library can parse.</summary>
public sealed class StreamErrorFramesTests
{
    public static TheoryData<string> Errors => new(Enum.GetNames<ForwarderError>());

    private static void AssertErrorJson(string json, ForwarderError error, string requestId)
    {
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        Assert.Equal(["error"], root.EnumerateObject().Select(p => p.Name));
        var body = root.GetProperty("error");
        Assert.Equal(requestId, body.GetProperty("request_id").GetString());
        Assert.Equal(ForwarderErrors.Code(error), body.GetProperty("code").GetString());
        Assert.Equal(ForwarderErrors.Message(error), body.GetProperty("message").GetString());
        Assert.Equal("upstream_error", body.GetProperty("type").GetString());
    }

    [Theory]
    [MemberData(nameof(Errors))]
    public void Sse_frame_is_one_error_event_with_json_data(string name)
    {
        var error = Enum.Parse<ForwarderError>(name);
        const string id = "0f8fad5bd9cb469fa16570867728950e";
        var frame = Encoding.UTF8.GetString(StreamErrorFrames.Sse(error, id));

        // One event: an `event:` line, one `data:` line, then the blank line that dispatches it.
        Assert.StartsWith("event: error\ndata: ", frame);
        Assert.EndsWith("\n\n", frame);
        var lines = frame[..^2].Split('\n');
        Assert.Equal(2, lines.Length);
        Assert.DoesNotContain('\r', frame);
        AssertErrorJson(lines[1]["data: ".Length..], error, id);
    }

    [Theory]
    [MemberData(nameof(Errors))]
    public void Ndjson_frame_is_one_json_line(string name)
    {
        var error = Enum.Parse<ForwarderError>(name);
        const string id = "req-7";
        var frame = Encoding.UTF8.GetString(StreamErrorFrames.Ndjson(error, id));
        Assert.EndsWith("\n", frame);
        Assert.DoesNotContain('\n', frame[..^1]);
        AssertErrorJson(frame[..^1], error, id);
    }

    [Fact]
    public void Awkward_request_ids_cannot_break_the_frame()
    {
        const string id = "line\nbreak \"quoted\" \\ data: x\r\n\n中文";
        var sse = Encoding.UTF8.GetString(StreamErrorFrames.Sse(ForwarderError.UpstreamReset, id));
        Assert.Equal(2, sse[..^2].Split('\n').Length);
        AssertErrorJson(sse[..^2].Split('\n')[1]["data: ".Length..], ForwarderError.UpstreamReset, id);

        var ndjson = Encoding.UTF8.GetString(StreamErrorFrames.Ndjson(ForwarderError.StreamIdleTimeout, id));
        Assert.DoesNotContain('\n', ndjson[..^1]);
        AssertErrorJson(ndjson[..^1], ForwarderError.StreamIdleTimeout, id);
    }

    [Fact]
    public void Frames_are_utf8_without_bom()
    {
        var frame = StreamErrorFrames.Ndjson(ForwarderError.UpstreamReset, "x");
        Assert.Equal((byte)'{', frame[0]);
    }
}
