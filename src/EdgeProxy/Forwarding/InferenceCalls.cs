using Microsoft.AspNetCore.Http;

namespace EdgeProxy.Forwarding;

/// <summary>
/// POSTs to the inference endpoints of OpenAI-style servers, Ollama, TGI and llama.cpp: they compute
/// an answer from the body and change nothing on the backend, so one the backend dropped unanswered
/// (killed, restarted) may be sent once more elsewhere with its kept body. Endpoints that store
/// something (files, batches, assistants' threads, <c>/v1/responses</c>) are not in the list.
/// </summary>
internal static class InferenceCalls
{
    private static readonly string[] PathEnds =
    [
        "/chat/completions", "/completions", "/embeddings", "/v1/messages",
        "/api/generate", "/api/chat", "/api/embed",
        "/generate", "/generate_stream", "/completion", "/embedding", "/infill", "/rerank", "/tokenize", "/detokenize",
    ];

    /// <summary>True for a POST whose target's path (query ignored) ends with an inference endpoint.</summary>
    public static bool Is(string method, ReadOnlySpan<char> target)
    {
        if (!HttpMethods.IsPost(method))
        {
            return false;
        }
        var query = target.IndexOf('?');
        var path = (query < 0 ? target : target[..query]).TrimEnd('/');
        foreach (var end in PathEnds)
        {
            if (path.EndsWith(end, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }
}
