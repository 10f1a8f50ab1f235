using EdgeProxy.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace EdgeProxy.Tests.Unit.Hosting;

/// <summary>
/// Where the general path admits a request (<see cref="RequestAdmission"/>): a request as Kestrel
/// hands it over (method, raw target, fields; strings are Latin-1, one char per byte) → the status
/// it is refused with, or 0 when it goes on. These are requests Kestrel's own parser lets through.
/// </summary>
public sealed class RequestAdmissionTests
{
    [Theory]
    [InlineData("GET /svc/m/x HTTP/1.1\nHost: gw", 0)]
    [InlineData("OPTIONS * HTTP/1.1\nHost: gw", 0)]
    [InlineData("GET http://gw/svc/m/x HTTP/1.1\nHost: gw", 0)]
    [InlineData("POST /svc/m/x?q=%00&r=% HTTP/1.1\nHost: [::1]:8080\nX-A: a\tb\nX-Empty:", 0)]
    [InlineData("get /svc/m/x HTTP/1.1\nHost: gw", 405)]
    [InlineData("Post /svc/m/x HTTP/1.1\nHost: gw", 405)]
    [InlineData("TRACE /svc/m/x HTTP/1.1\nHost: gw", 405)]
    [InlineData("CONNECT gw:443 HTTP/1.1\nHost: gw:443", 405)]
    [InlineData("PROPFIND /svc/m/x HTTP/1.1\nHost: gw", 405)]
    [InlineData("GET /svc/m/a\tb HTTP/1.1\nHost: gw", 400)]
    [InlineData("GET /svc/m/a\u0001b HTTP/1.1\nHost: gw", 400)]
    [InlineData("GET /svc/m/a\u007fb HTTP/1.1\nHost: gw", 400)]
    [InlineData("GET /svc/m/a\rb HTTP/1.1\nHost: gw", 400)]
    [InlineData("GET /svc/m/a?q=\u001f HTTP/1.1\nHost: gw", 400)]
    [InlineData("GET /svc/m/a#f HTTP/1.1\nHost: gw", 400)]
    [InlineData("GET /svc/m/a%zz HTTP/1.1\nHost: gw", 400)]
    [InlineData("GET /svc/m/a%00 HTTP/1.1\nHost: gw", 400)]
    [InlineData("GET /svc/m/x HTTP/1.1\nHost: gw:65536", 400)]
    [InlineData("GET /svc/m/x HTTP/1.1\nHost: gw/../x@evil", 400)]
    [InlineData("GET /svc/m/x HTTP/1.1\nHost: gw\nX-A: a\u0001b", 400)]
    [InlineData("GET /svc/m/x HTTP/1.1\nHost: gw\nX-A: a\u007fb", 400)]
    [InlineData("GET /svc/m/x HTTP/1.1\nHost: gw\nX-A: caf\u00e9", 400)]
    [InlineData("GET /svc/m/x HTTP/1.1\nHost: gw\nX(A): 1", 400)]
    [InlineData("GET /svc/m/x HTTP/1.1\nHost: gw\nX/A: 1", 400)]
    [InlineData("GET /svc/m/x HTTP/1.1\nHost: gw\nConnection: keep-alive\u0001", 400)]
    public void Requests_kestrel_accepts_are_admitted_by_the_fast_paths_rules(string head, int status)
    {
        var refusal = RequestAdmission.Check(Context(head));

        Assert.Equal(status, refusal?.Status ?? 0);
    }

    [Fact]
    public void A_405_names_the_methods_and_other_refusals_their_cause()
    {
        Assert.Equal("method_not_allowed", RequestAdmission.Check(Context("get /x HTTP/1.1\nHost: gw"))?.Code);
        Assert.Equal("invalid_request_target", RequestAdmission.Check(Context("GET /a\u0001 HTTP/1.1\nHost: gw"))?.Code);
        Assert.Equal("invalid_host", RequestAdmission.Check(Context("GET /x HTTP/1.1\nHost: u@gw"))?.Code);
        Assert.Equal("invalid_header", RequestAdmission.Check(Context("GET /x HTTP/1.1\nHost: gw\nX-A: \u0001"))?.Code);
    }

    /// <summary>The request as Kestrel would present it: method, raw target, fields (values OWS-trimmed, repeated names combined).</summary>
    private static DefaultHttpContext Context(string head)
    {
        var lines = head.Split('\n');
        var requestLine = lines[0].Split(' ');
        var context = new DefaultHttpContext();
        context.Request.Method = requestLine[0];
        context.Features.Get<IHttpRequestFeature>()!.RawTarget = requestLine[1];
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':');
            context.Request.Headers.Append(line[..colon], line[(colon + 1)..].Trim(' ', '\t'));
        }
        return context;
    }
}
