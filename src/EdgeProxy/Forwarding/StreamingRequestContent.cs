using System.Buffers;
using System.Net;
using EdgeProxy.Configuration;

namespace EdgeProxy.Forwarding;

/// <summary>
/// Sends the client's request body upstream as it arrives (no buffering of uploads). Remembers
/// whether reading has started: until then the request was never delivered and may be retried on
/// another backend; afterwards the body is gone and a failure is final, unless the whole body was
/// sent and fits RETRY_BUFFER_KB: the bytes that went by are kept (in pooled memory, while the
/// exchange lasts) and sent again to the next backend (<see cref="Replayable"/>). Waiting for the
/// client's bytes runs on the client's timer, sending them on the backend's
/// (<see cref="ExchangeTimers"/>), and the first-byte timer starts over once the body is all sent.
/// </summary>
internal sealed class StreamingRequestContent(Stream body, long? contentLength, CancellationTokenSource timer, GatewaySettings settings) : HttpContent, ICopyObserver
{
    private int _started;
    private byte[]? _kept;
    private int _keptLength;
    private bool _overflowed;
    private bool _ended;

    /// <summary>
    /// The whole body was read from the client and is kept: it can be sent again, to another backend
    /// or on a fresh connection when SocketsHttpHandler finds its pooled one closed (even when
    /// writing it upstream failed, nothing of it was lost).
    /// </summary>
    public bool Replayable => Volatile.Read(ref _ended) && !_overflowed;

    /// <summary>True once the upstream connection asked for the body (the body may be partly sent).</summary>
    public bool Started => Volatile.Read(ref _started) != 0;

    /// <summary>Set when reading the client's body failed (as opposed to writing it upstream).</summary>
    public Exception? ClientReadError { get; private set; }

    /// <summary>Resets the content headers for a new request (a replay goes with another), then sets the length.</summary>
    public void ApplyLength()
    {
        Headers.Clear();
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
            if (Replayable)
            {
                ExchangeTimers.AwaitUpstream(timer, settings);
                await stream.WriteAsync(_kept.AsMemory(0, _keptLength), cancellationToken).ConfigureAwait(false);
                await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
                return;
            }
            // SocketsHttpHandler re-sends content when it retries on a stale pooled connection; a
            // body not kept whole cannot be replayed, so fail instead of sending half a body.
            throw new InvalidOperationException("The request body was already sent and cannot be replayed.");
        }
        _overflowed = settings.RetryBufferBytes == 0 || contentLength > settings.RetryBufferBytes;
        var result = await StreamCopier.CopyAsync(_overflowed ? body : new Keeping(body, this), stream, flush: true, observer: this, cancellationToken, cancellationToken)
            .ConfigureAwait(false);
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

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _kept, null) is { } kept)
        {
            ArrayPool<byte>.Shared.Return(kept);
        }
        base.Dispose(disposing);
    }

    /// <summary>Keeps <paramref name="bytes"/> for a replay, until the body passes RETRY_BUFFER_KB (then nothing is kept).</summary>
    private void Keep(ReadOnlySpan<byte> bytes)
    {
        if (_overflowed || bytes.IsEmpty)
        {
            return;
        }
        var needed = _keptLength + bytes.Length;
        if (needed > settings.RetryBufferBytes)
        {
            _overflowed = true;
            ArrayPool<byte>.Shared.Return(_kept ?? []);
            _kept = null;
            return;
        }
        if (_kept is null || _kept.Length < needed)
        {
            var grown = ArrayPool<byte>.Shared.Rent(Math.Max(needed, Math.Min(2 * (_kept?.Length ?? 4096), settings.RetryBufferBytes)));
            _kept?.AsSpan(0, _keptLength).CopyTo(grown);
            if (_kept is not null)
            {
                ArrayPool<byte>.Shared.Return(_kept);
            }
            _kept = grown;
        }
        bytes.CopyTo(_kept.AsSpan(_keptLength));
        _keptLength = needed;
    }

    /// <summary>The client's body as read, each chunk also kept by its content.</summary>
    private sealed class Keeping(Stream inner, StreamingRequestContent content) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            content.Keep(buffer.Span[..read]);
            if (read == 0 && buffer.Length > 0)
            {
                Volatile.Write(ref content._ended, true);
            }
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    protected override bool TryComputeLength(out long length)
    {
        length = contentLength ?? -1;
        return contentLength.HasValue;
    }
}
