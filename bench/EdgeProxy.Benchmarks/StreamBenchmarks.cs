using System.Text;
using BenchmarkDotNet.Attributes;
using EdgeProxy.Forwarding;
using EdgeProxy.Observability;

namespace EdgeProxy.Benchmarks;

/// <summary>
/// The response copy loop over in-memory streams, the source yielding 1 KiB per read as a socket
/// carrying an event stream does, and the token-usage scanner over an SSE body.
/// </summary>
[MemoryDiagnoser]
public class StreamBenchmarks
{
    private byte[] _body = null!;
    private byte[] _sse = null!;

    [GlobalSetup]
    public void Setup()
    {
        _body = new byte[64 * 1024];
        Random.Shared.NextBytes(_body);
        var sse = new StringBuilder();
        for (var i = 0; i < 200; i++)
        {
            sse.Append("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"token ")
               .Append(i).Append("\"}}]}\n\n");
        }
        sse.Append("data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":200,\"total_tokens\":212}}\n\ndata: [DONE]\n\n");
        _sse = Encoding.UTF8.GetBytes(sse.ToString());
    }

    /// <summary>64 KiB in 64 reads of 1 KiB: per-chunk cost of the loop (zero-byte read, rent, write, return).</summary>
    [Benchmark]
    public async Task<long> CopyLoop64x1KiB()
    {
        var result = await StreamCopier.CopyAsync(new ChunkedReadStream(_body, 1024), Stream.Null, flush: false, observer: null, default, default);
        return result.Bytes;
    }

    /// <summary>An SSE body of 200 chat chunks plus a final usage event, fed in 1 KiB pieces.</summary>
    [Benchmark]
    public long? UsageScannerSse()
    {
        var scanner = new UsageScanner();
        for (var offset = 0; offset < _sse.Length; offset += 1024)
        {
            scanner.Observe(_sse.AsSpan(offset, Math.Min(1024, _sse.Length - offset)));
        }
        scanner.Release();   // as the forwarder does when the response ends
        return scanner.CompletionTokens;
    }

    /// <summary>Returns at most <c>chunk</c> bytes per read, synchronously, like a socket with data ready.</summary>
    private sealed class ChunkedReadStream(byte[] data, int chunk) : Stream
    {
        private int _position;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => data.Length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            => new(Read(buffer.Span));

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = Math.Min(Math.Min(chunk, buffer.Length), data.Length - _position);
            data.AsSpan(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
