using EdgeProxy.Routing;

namespace EdgeProxy.Tests.Unit.Routing;

/// <summary>Raw request target -> (service, model, remainder), with the remainder kept byte for byte.</summary>
public sealed class GatewayPathTests
{
    [Theory]
    [InlineData("/google/gemma-4-26b-a4b-it", "google", "gemma-4-26b-a4b-it", "")]
    [InlineData("/google/gemma-4-26b-a4b-it/", "google", "gemma-4-26b-a4b-it", "/")]
    [InlineData("/google/gemma-4-26b-a4b-it/v1/chat/completions", "google", "gemma-4-26b-a4b-it", "/v1/chat/completions")]
    [InlineData("/google/gemma-4-26b-a4b-it/v1/models/", "google", "gemma-4-26b-a4b-it", "/v1/models/")]
    [InlineData("/openai/gpt-4/v1/files/file_id", "openai", "gpt-4", "/v1/files/file_id")]
    [InlineData("/svc/model?stream=true", "svc", "model", "?stream=true")]
    [InlineData("/svc/model?", "svc", "model", "?")]
    [InlineData("/svc/model?a=/b/c", "svc", "model", "?a=/b/c")]
    [InlineData("/svc/model/?a=1", "svc", "model", "/?a=1")]
    [InlineData("/svc/model/v1/x?q=%2F%20+y&z", "svc", "model", "/v1/x?q=%2F%20+y&z")]
    [InlineData("/svc/model/a%2Fb/c", "svc", "model", "/a%2Fb/c")]
    [InlineData("/svc/model//double//slash", "svc", "model", "//double//slash")]
    [InlineData("/svc/m%2Fx/rest", "svc", "m%2Fx", "/rest")]
    [InlineData("/a/b", "a", "b", "")]
    [InlineData("/服务名/模型名/v1", "服务名", "模型名", "/v1")]
    [InlineData("/svc/model.v2:latest/x", "svc", "model.v2:latest", "/x")]
    public void Splits_service_model_and_remainder(string target, string service, string model, string remainder)
    {
        Assert.True(GatewayPath.TryParse(target, out var path));
        Assert.Equal(service, path.Service.ToString());
        Assert.Equal(model, path.Model.ToString());
        Assert.Equal(remainder, path.Remainder.ToString());

        // The remainder is a slice of the raw target, not a re-encoded copy.
        Assert.True(target.AsSpan().EndsWith(path.Remainder));
        Assert.True(path.Remainder.IsEmpty || path.Remainder[0] is '/' or '?');
    }

    [Theory]
    [InlineData("")]
    [InlineData("/")]
    [InlineData("/a")]
    [InlineData("/ab")]
    [InlineData("/svc")]
    [InlineData("/svc/")]
    [InlineData("/svc?x=/a/b")]
    [InlineData("/svc/?x")]
    [InlineData("//model")]
    [InlineData("//model/x")]
    [InlineData("/svc//x")]
    [InlineData("svc/model")]
    [InlineData("http://host/svc/model")]
    [InlineData("*")]
    [InlineData("?/svc/model")]
    public void Rejects_targets_without_a_service_and_model(string target)
        => Assert.False(GatewayPath.TryParse(target, out _));

    /// <summary>Dot segments (plain, percent-encoded in either case, or behind a backslash) in the path; never the query.</summary>
    [Theory]
    [InlineData("/a/./b", true)]
    [InlineData("/a/../b", true)]
    [InlineData("/..", true)]
    [InlineData("/a/%2e%2E/b", true)]
    [InlineData("/a/%2E/b", true)]
    [InlineData("/a/%2e", true)]
    [InlineData("/a/.%2e/b", true)]
    [InlineData("/a\\..\\b", true)]
    [InlineData("/v1/chat/completions", false)]
    [InlineData("/a/.b/c.d/e..", false)]
    [InlineData("/a/%2eb", false)]
    [InlineData("/a/%252e/b", false)]
    [InlineData("/a/%2", false)]
    [InlineData("/a/%", false)]
    [InlineData("/a/%e2%80%a6", false)]
    [InlineData("/a/b?x=/../", false)]
    [InlineData("/a/b?x=%2e%2e", false)]
    public void Finds_dot_segments_in_the_path(string remainder, bool expected)
        => Assert.Equal(expected, GatewayPath.HasDotSegment(remainder));
}
