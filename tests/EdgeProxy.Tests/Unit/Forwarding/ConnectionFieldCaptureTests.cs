using System.Text;
using EdgeProxy.Forwarding;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>
/// Kestrel decodes each request Connection line with the encoding <see cref="ConnectionFieldCapture.Select"/>
/// names; the capture keeps the lines as received for the request's flow and refuses bytes a field
/// value may not have (Kestrel turns the exception into a 400).
/// </summary>
public sealed class ConnectionFieldCaptureTests
{
    [Fact]
    public void Only_the_connection_field_is_decoded_by_the_capture()
    {
        Assert.NotNull(ConnectionFieldCapture.Select("Connection"));
        Assert.NotNull(ConnectionFieldCapture.Select("connection"));
        Assert.Null(ConnectionFieldCapture.Select("Content-Type"));
        Assert.Null(ConnectionFieldCapture.Select("X-Connection"));
    }

    [Fact]
    public async Task The_lines_kestrel_decodes_are_kept_for_the_request_in_order()
    {
        // A flow of its own, as each Kestrel request has (the values stay in this task's context).
        var raw = await Task.Run(() =>
        {
            var encoding = ConnectionFieldCapture.Select("Connection")!;
            Assert.Null(ConnectionFieldCapture.Raw);
            Assert.Equal("keep-alive, X-Foo", encoding.GetString("keep-alive, X-Foo"u8));
            Assert.Equal("X-Bar", encoding.GetString("X-Bar"u8.ToArray()));
            return ConnectionFieldCapture.Raw;
        });

        Assert.Equal("keep-alive, X-Foo, X-Bar", raw);
        Assert.Null(ConnectionFieldCapture.Raw);
    }

    [Theory]
    [InlineData("keep-alive\u0001")]
    [InlineData("close, X\u007f")]
    [InlineData("close, X\u00e9")]
    [InlineData("a\u0000b")]
    public void Bytes_a_field_value_may_not_have_are_refused(string value)
    {
        var encoding = ConnectionFieldCapture.Select("Connection")!;

        Assert.Throws<DecoderFallbackException>(() => encoding.GetString(Encoding.Latin1.GetBytes(value).AsSpan()));
    }
}
