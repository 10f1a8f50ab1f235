using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace EdgeProxy.Transport;

/// <summary>
/// The connection's input as a <see cref="PipeReader"/> that receives straight into its own buffers
/// when the application asks: no receive loop running ahead, no pipe between socket and parser, and
/// nothing held while a keep-alive connection idles (the buffers go back to the pool once consumed).
/// A peer that closes while nobody reads is still seen at once: the loop reports the FIN or reset as
/// an edge and the connection cancels <see cref="ConnectionContext.ConnectionClosed"/>.
/// </summary>
internal sealed class SocketPipeReader(EpollConnection connection, EpollSocket socket) : PipeReader
{
    /// <summary>Receive size; a segment with less room than <see cref="MinReceive"/> left is followed by a new one.</summary>
    private const int SegmentSize = 8192;

    private const int MinReceive = 2048;

    private PendingRead? _pending;
    private BufferSegment? _spare;
    private BufferSegment? _head;
    private int _headIndex;
    private BufferSegment? _tail;
    private bool _examinedAll;
    private bool _eof;
    private bool _completed;
    private int _cancelPending;
    private Exception? _error;

    public override bool TryRead(out ReadResult result)
    {
        ThrowIfCompleted();
        if (Interlocked.Exchange(ref _cancelPending, 0) == 1)
        {
            result = Result(canceled: true);
            return true;
        }
        if (Buffered > 0 || _eof || _error is not null)
        {
            ThrowIfFailed();
            result = Result(canceled: false);
            return true;
        }
        result = default;
        return false;
    }

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfCompleted();
        if (Interlocked.Exchange(ref _cancelPending, 0) == 1)
        {
            return new ValueTask<ReadResult>(Result(canceled: true));
        }
        ThrowIfFailed();
        if ((!_examinedAll && Buffered > 0) || _eof)
        {
            return new ValueTask<ReadResult>(Result(canceled: false));
        }
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<ReadResult>(cancellationToken);
        }
        if (TryReceive())
        {
            return new ValueTask<ReadResult>(Result(canceled: false));
        }
        return (_pending ??= new PendingRead(this, socket)).RunAsync(cancellationToken);
    }

    /// <summary>The reader's one pending read, retried on each edge (no allocation per wait).</summary>
    private sealed class PendingRead(SocketPipeReader reader, EpollSocket socket) : ReadinessOperation<ReadResult>
    {
        protected override ValueTask WaitAsync(CancellationToken cancellationToken) => socket.WaitReadableAsync(cancellationToken);

        protected override bool TryComplete(out ReadResult result)
        {
            if (Interlocked.Exchange(ref reader._cancelPending, 0) == 1)
            {
                result = reader.Result(canceled: true);
                return true;
            }
            var done = reader.TryReceive();
            result = done ? reader.Result(canceled: false) : default;
            return done;
        }
    }

    /// <summary>One receive into the tail; true when it brought bytes or the end. Throws what the connection's failure maps to.</summary>
    private bool TryReceive()
    {
        if (connection.AbortReason is { } aborted)
        {
            throw Fail(aborted);
        }
        if (!connection.MaybeReadable)
        {
            return false;   // nothing there: wait for the edge without taking a buffer (idle connections hold none)
        }
        if (_tail is null || _tail.Free < MinReceive)
        {
            var segment = BufferSegment.Rent(ref _spare, SegmentSize, _tail is null ? 0 : _tail.RunningIndex + _tail.End);
            if (_tail is null)
            {
                _head = segment;
                _headIndex = 0;
            }
            else
            {
                _tail.Append(segment);
            }
            _tail = segment;
        }
        int received;
        try
        {
            received = connection.Receive(_tail.Array.AsSpan(_tail.End));
        }
        catch (SocketException ex)
        {
            throw Fail(connection.Failure(ex));
        }
        catch (ConnectionAbortedException ex)
        {
            throw Fail(ex);   // a TLS failure
        }
        if (received < 0)
        {
            return false;
        }
        if (received == 0)
        {
            _eof = true;
            connection.OnPeerClosed();
            return true;
        }
        _tail.Grow(received);
        _examinedAll = false;
        return true;
    }

    private Exception Fail(Exception error)
    {
        _error = error;
        connection.OnPeerClosed();
        return error;
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        ThrowIfCompleted();
        if (_head is null)
        {
            _examinedAll = true;
            return;
        }
        var consumedSegment = consumed.GetObject() as BufferSegment;
        if (consumedSegment is not null)
        {
            while (_head != consumedSegment)
            {
                var next = _head!.NextSegment;
                _head.Release(ref _spare);
                _head = next;
                _headIndex = 0;
                if (_head is null)
                {
                    throw new InvalidOperationException("The consumed position is not in the buffer the reader returned.");
                }
            }
            _headIndex = consumed.GetInteger();
        }
        var examinedSegment = examined.GetObject() as BufferSegment;
        _examinedAll = examinedSegment is null || (examinedSegment == _tail && examined.GetInteger() >= _tail!.End);
        if (_head == _tail && _headIndex >= _tail!.End)
        {
            // Everything consumed: the buffer goes back to the pool, so an idle connection holds none.
            _head.Release(ref _spare);
            _head = _tail = null;
            _headIndex = 0;
        }
    }

    public override void CancelPendingRead()
    {
        Volatile.Write(ref _cancelPending, 1);
        socket.WakeReader();
    }

    public override void Complete(Exception? exception = null)
    {
        if (_completed)
        {
            return;
        }
        _completed = true;
        BufferSegment.ReleaseChain(_head, ref _spare);
        _head = _tail = null;
        connection.OnInputCompleted();
    }

    private long Buffered => _head is null ? 0 : _tail!.RunningIndex + _tail.End - (_head.RunningIndex + _headIndex);

    private ReadResult Result(bool canceled)
    {
        var buffer = _head is null ? default : new ReadOnlySequence<byte>(_head, _headIndex, _tail!, _tail!.End);
        return new ReadResult(buffer, canceled, _eof && !canceled);
    }

    private void ThrowIfCompleted()
    {
        if (_completed)
        {
            throw new InvalidOperationException("Reading is not allowed after the reader was completed.");
        }
    }

    private void ThrowIfFailed()
    {
        if (_error is not null)
        {
            throw _error;
        }
    }
}
