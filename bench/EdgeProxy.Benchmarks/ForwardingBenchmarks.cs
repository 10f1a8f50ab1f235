using System.Net;
using BenchmarkDotNet.Attributes;
using EdgeProxy.Balancing;
using EdgeProxy.Forwarding;
using EdgeProxy.Routing;
using Microsoft.AspNetCore.Http;

namespace EdgeProxy.Benchmarks;

/// <summary>
/// Request header copying: the forwarder's CreateRequest for a typical OpenAI-style POST from a
/// browser-ish client (12 headers), including the forwarding headers it recomputes.
/// </summary>
[MemoryDiagnoser]
public class ForwardingBenchmarks
{
    private DefaultHttpContext _context = null!;
    private BackendEntry _backend;

    [GlobalSetup]
    public void Setup()
    {
        var table = Fixtures.Table();
        table.TryGetModel("svc0", "model-0", out var route);
        _backend = route!.Backends[0];
        _context = new DefaultHttpContext();
        _context.Connection.RemoteIpAddress = IPAddress.Parse("10.1.2.3");
        var request = _context.Request;
        request.Method = "POST";
        request.Scheme = "http";
        request.Host = new HostString("gateway.example:8000");
        request.Path = "/svc0/model-0/v1/chat/completions";
        var headers = request.Headers;
        headers.Accept = "text/event-stream";
        headers.AcceptEncoding = "gzip, deflate, br";
        headers.Authorization = "Bearer sk-client-key";
        headers.ContentType = "application/json";
        headers.ContentLength = 412;
        headers.UserAgent = "OpenAI/JS 4.67.3";
        headers.Connection = "keep-alive";
        headers["X-Stainless-Lang"] = "js";
        headers["X-Stainless-Package-Version"] = "4.67.3";
        headers["X-Session-ID"] = "session-0123456789abcdef";
        headers["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        headers["X-Request-ID"] = "req-42";
    }

    private readonly CancellationTokenSource _timer = new();
    private readonly EdgeProxy.Configuration.GatewaySettings _settings = new();

    [Benchmark]
    public int CreateRequest()
    {
        using var message = HttpForwarder.CreateRequest(_context, _backend, "/v1/chat/completions", "req-42", IPAddress.Loopback, peerTrusted: false,
            new StreamingRequestContent(Stream.Null, 412, _timer, _settings));
        return message.Headers.NonValidated.Count;
    }

    /// <summary>A fresh X-Request-ID (counter through two mixers, 32 hex characters; no syscall).</summary>
    [Benchmark]
    public string NewRequestId() => RequestIds.NewId();
}
