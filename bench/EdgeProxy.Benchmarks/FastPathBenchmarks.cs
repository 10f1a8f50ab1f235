using System.Buffers;
using System.Net;
using System.Text;
using BenchmarkDotNet.Attributes;
using EdgeProxy.Balancing;
using EdgeProxy.Forwarding;
using Microsoft.AspNetCore.Connections;

namespace EdgeProxy.Benchmarks;

/// <summary>
/// The HTTP/1.1 fast path's per-request byte work: parsing the client's head, writing the upstream
/// head, parsing the backend's response head and writing the client's. The same typical
/// OpenAI-style POST as <see cref="ForwardingBenchmarks"/> (12 header fields) and a vLLM-style
/// streaming answer. None of it should allocate.
/// </summary>
[MemoryDiagnoser]
public class FastPathBenchmarks
{
    private static readonly byte[] RequestHead = Encoding.ASCII.GetBytes(
        "POST /svc0/model-0/v1/chat/completions HTTP/1.1\r\n" +
        "Host: gateway.example:8000\r\n" +
        "Accept: text/event-stream\r\n" +
        "Accept-Encoding: gzip, deflate, br\r\n" +
        "Authorization: Bearer sk-client-key\r\n" +
        "Content-Type: application/json\r\n" +
        "Content-Length: 412\r\n" +
        "User-Agent: OpenAI/JS 4.67.3\r\n" +
        "Connection: keep-alive\r\n" +
        "X-Stainless-Lang: js\r\n" +
        "X-Stainless-Package-Version: 4.67.3\r\n" +
        "X-Session-ID: session-0123456789abcdef\r\n" +
        "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n" +
        "X-Request-ID: req-42\r\n\r\n");

    private static readonly byte[] ResponseHead = Encoding.ASCII.GetBytes(
        "HTTP/1.1 200 OK\r\n" +
        "date: Sun, 29 Nov 2026 10:00:00 GMT\r\n" +
        "server: uvicorn\r\n" +
        "content-type: text/event-stream; charset=utf-8\r\n" +
        "transfer-encoding: chunked\r\n" +
        "x-request-id: upstream-7\r\n\r\n");

    private readonly Http1RequestHead _head = new();
    private readonly byte[] _out = new byte[8192];
    private ReadOnlySequence<byte> _request;
    private Http1Target _target = null!;
    private Http1Exchange _exchange = null!;
    private Http1ResponseHead _response;

    [GlobalSetup]
    public void Setup()
    {
        _request = new ReadOnlySequence<byte>(RequestHead);
        var table = Fixtures.Table();
        table.TryGetModel("svc0", "model-0", out var route);
        _target = route!.Backends[0].Http1 ?? Http1Target.TryCreate("http://10.0.0.1:8001/v1-prefix", "Authorization", "Bearer sk-upstream")!;
        _exchange = new Http1Exchange(new DefaultConnectionContext(), IPAddress.Parse("10.1.2.3"), peerTrusted: false, gate: null!);   // no request is admitted here
        _head.TryRead(_request, out _);
        _head.RemainderOffset = "/svc0/model-0".Length;
        _response = Http1ResponseHead.Parse(ResponseHead, headRequest: false);
    }

    [Benchmark]
    public int ParseRequestHead()
    {
        var status = _head.TryRead(_request, out _);
        return (int)status + _head.FieldCount;
    }

    [Benchmark]
    public int WriteUpstreamHead()
        => HttpForwarder.WriteRequestHead(_out, _head, _target, _exchange, _exchange.Peer, "req-42", inlineBody: null, bodyLength: 0);

    [Benchmark]
    public int ParseResponseHead() => Http1ResponseHead.Parse(ResponseHead, headRequest: false).Status;

    [Benchmark]
    public int WriteClientHead() => HttpForwarder.WriteResponseHead(_out, ResponseHead, _response, "req-42", close: false);
}
