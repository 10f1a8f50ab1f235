using System.IO.Pipelines;
using System.Net.Sockets;

namespace EdgeProxy.Transport;

/// <summary>
/// The connection's output as a <see cref="PipeWriter"/> whose flush sends straight from its buffers:
/// no send loop and no pipe in between. A flush completes when the kernel has taken every byte, so
/// a client that stops reading holds back its writer exactly as long as the socket buffer is full
/// (the back-pressure a pipe gives with a pause threshold, without the extra copy of the bytes).
/// FlushResult.IsCompleted reports the connection gone, as Kestrel's transport does once its send
/// loop ended.
/// </summary>
internal sealed class SocketPipeWriter(EpollConnection connection, EpollSocket socket) : PipeWriter
{
    private const int SegmentSize = 4096;

    private PendingFlush? _pending;
    private BufferSegment? _spare;
    private BufferSegment? _first;
    private BufferSegment? _last;
    private int _cancelPending;
    private bool _completed;
    private bool _failed;
    private long _unflushed;

    public override bool CanGetUnflushedBytes => true;

    public override long UnflushedBytes => _unflushed;

    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        ThrowIfCompleted();
        var needed = Math.Max(sizeHint, 1);
        if (_last is null || _last.Free < needed)
        {
            var segment = BufferSegment.Rent(ref _spare, Math.Max(needed, SegmentSize), 0);
            if (_last is null)
            {
                _first = segment;
            }
            else
            {
                _last.Append(segment);
            }
            _last = segment;
        }
        return _last.Array.AsMemory(_last.End);
    }

    public override Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    public override void Advance(int bytes)
    {
        ThrowIfCompleted();
        if (bytes == 0)
        {
            return;
        }
        if (_last is null || bytes > _last.Free)
        {
            throw new InvalidOperationException("Advance beyond the memory GetMemory returned.");
        }
        _last.Grow(bytes);
        _unflushed += bytes;
    }

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _cancelPending, 0) == 1)
        {
            return new ValueTask<FlushResult>(new FlushResult(isCanceled: true, isCompleted: false));
        }
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<FlushResult>(cancellationToken);
        }
        if (TrySendAll())
        {
            return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: _failed));
        }
        return (_pending ??= new PendingFlush(this, socket)).RunAsync(cancellationToken);
    }

    /// <summary>The writer's one pending flush, retried on each edge (no allocation per wait).</summary>
    private sealed class PendingFlush(SocketPipeWriter writer, EpollSocket socket) : ReadinessOperation<FlushResult>
    {
        protected override ValueTask WaitAsync(CancellationToken cancellationToken) => socket.WaitWritableAsync(cancellationToken);

        protected override bool TryComplete(out FlushResult result)
        {
            if (Interlocked.Exchange(ref writer._cancelPending, 0) == 1)
            {
                result = new FlushResult(isCanceled: true, isCompleted: false);
                return true;
            }
            var done = writer.TrySendAll();
            result = new FlushResult(isCanceled: false, isCompleted: writer._failed);
            return done;
        }
    }

    /// <summary>Sends what is buffered; true when all of it went (or the connection failed and it was dropped), false when the kernel is full.</summary>
    private bool TrySendAll()
    {
        if (connection.AbortReason is not null)
        {
            _failed = true;
        }
        while (_first is not null)
        {
            if (_failed)
            {
                DropAll();
                return true;
            }
            var segment = _first;
            var pending = segment.End - segment.Start;
            if (pending > 0)
            {
                int sent;
                try
                {
                    sent = connection.Send(segment.Array.AsSpan(segment.Start, pending));
                }
                catch (Exception ex) when (ex is SocketException or Microsoft.AspNetCore.Connections.ConnectionAbortedException)
                {
                    _failed = true;
                    connection.OnPeerClosed();
                    continue;
                }
                if (sent < 0)
                {
                    return false;
                }
                segment.Start += sent;
                _unflushed -= sent;
                if (sent < pending)
                {
                    continue;
                }
            }
            if (segment == _last)
            {
                // Everything went: the buffer goes back to the pool (an idle connection holds none).
                segment.Release(ref _spare);
                _first = _last = null;
            }
            else
            {
                _first = segment.NextSegment;
                segment.Release(ref _spare);
            }
        }
        return true;
    }

    private void DropAll()
    {
        BufferSegment.ReleaseChain(_first, ref _spare);
        _first = _last = null;
        _unflushed = 0;
    }

    public override void CancelPendingFlush()
    {
        Volatile.Write(ref _cancelPending, 1);
        socket.WakeWriter();
    }

    /// <summary>
    /// The application is done writing. Bytes written but not flushed still go out (a pipe's writer
    /// commits them on completion too); then the connection finishes (<see cref="EpollConnection.OnOutputCompleted"/>).
    /// </summary>
    public override void Complete(Exception? exception = null)
    {
        if (_completed)
        {
            return;
        }
        _completed = true;
        if (_first is null || _failed || exception is not null)
        {
            DropAll();
            connection.OnOutputCompleted(drain: null);
            return;
        }
        connection.OnOutputCompleted(TrySendAll() ? null : DrainAsync());
    }

    private async Task DrainAsync()
    {
        try
        {
            while (!TrySendAll())
            {
                await socket.WaitWritableAsync(connection.ConnectionClosed).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            DropAll();
        }
    }

    /// <summary>After the connection's end: whatever is left goes back to the pool.</summary>
    internal void Release() => DropAll();

    private void ThrowIfCompleted()
    {
        if (_completed)
        {
            throw new InvalidOperationException("Writing is not allowed after the writer was completed.");
        }
    }
}
