using EdgeProxy.Forwarding;

namespace EdgeProxy.Tests.Unit.Forwarding;

public sealed class InferenceCallsTests
{
    [Theory]
    [InlineData("POST", "/v1/chat/completions", true)]
    [InlineData("POST", "/v1/completions?stream=true", true)]
    [InlineData("POST", "/openai/deployments/gpt/chat/completions?api-version=2024-06-01", true)]
    [InlineData("POST", "/v1/embeddings", true)]
    [InlineData("POST", "/v1/messages", true)]
    [InlineData("POST", "/api/generate", true)]
    [InlineData("POST", "/api/chat/", true)]
    [InlineData("POST", "/api/embeddings", true)]
    [InlineData("POST", "/generate_stream", true)]
    [InlineData("POST", "/completion", true)]
    [InlineData("GET", "/v1/chat/completions", false)]
    [InlineData("PUT", "/v1/chat/completions", false)]
    [InlineData("POST", "/v1/files", false)]
    [InlineData("POST", "/v1/batches", false)]
    [InlineData("POST", "/v1/responses", false)]
    [InlineData("POST", "/v1/threads/t1/messages", false)]
    [InlineData("POST", "/v1/fine_tuning/jobs", false)]
    [InlineData("POST", "", false)]
    [InlineData("POST", "?x=/v1/completions", false)]
    public void Only_posts_to_inference_endpoints_count(string method, string remainder, bool expected)
        => Assert.Equal(expected, InferenceCalls.Is(method, remainder));
}
