using System.Net;
using EdgeProxy.Configuration;

namespace EdgeProxy.Forwarding;

/// <summary>
/// Sends the client's request body upstream as it arrives (no buffering of uploads). Remembers
/// whether reading has started: until then the request was never delivered and may be retried on
/// another backend; afterwards the body is gone and a failure is final. Waiting for the client's
/// bytes runs on the client's timer, sending them on the backend's (<see cref="ExchangeTimers"/>),
/// and the first-byte timer starts over once the body is all sent.
/// </summary>
internal sealed class StreamingRequestContent(Stream body, long? contentLength, CancellationTokenSource timer, GatewaySettings settings) : HttpContent, ICopyObserver
{
    private int _started;

    /// <summary>True once the upstream connection asked for the body (the body may be partly sent).</summary>
    public bool Started => Volatile.Read(ref _started) != 0;

    /// <summary>Set when reading the client's body failed (as opposed to writing it upstream).</summary>
    public Exception? ClientReadError { get; private set; }

    public void ApplyLength()
    {
        if (contentLength is long length)
        {
            Headers.ContentLength = length;
        }
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        => SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            // SocketsHttpHandler re-sends content when it retries on a stale pooled connection;
            // a streamed body cannot be replayed, so fail instead of sending half a body.
            throw new InvalidOperationException("The request body was already sent and cannot be replayed.");
        }
        var result = await StreamCopier.CopyAsync(body, stream, flush: true, observer: this, cancellationToken, cancellationToken).ConfigureAwait(false);
        switch (result.Outcome)
        {
            case StreamCopyOutcome.Completed:
                ExchangeTimers.AwaitUpstream(timer, settings);
                break;
            case StreamCopyOutcome.ReadFailed:
                ClientReadError = result.Exception;
                throw new IOException("Reading the client request body failed.", result.Exception);
            case StreamCopyOutcome.WriteFailed:
                throw new IOException("Writing the request body upstream failed.", result.Exception);
        }
    }

    void ICopyObserver.OnReading() => ExchangeTimers.AwaitClient(timer, settings);

    void ICopyObserver.OnWriting() => ExchangeTimers.AwaitUpstream(timer, settings);

    protected override bool TryComputeLength(out long length)
    {
        length = contentLength ?? -1;
        return contentLength.HasValue;
    }
}
