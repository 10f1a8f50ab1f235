using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace EdgeProxy.Transport;

/// <summary>
/// The connection's socket as a <see cref="Stream"/>, for a layer that wants a stream under it
/// (TLS: <see cref="System.Net.Security.SslStream"/>): each read is one receive into the caller's
/// buffer and each write goes straight to the kernel, so no pipe and no copy sit between the
/// socket and the TLS records. A zero-byte read waits for readability without taking a buffer (an
/// idle connection holds none); like the pipe reader's wait, it trusts the readiness memory, so on
/// a socket not yet found empty it returns at once and the read that follows finds out. Failures
/// surface as on the connection's pipes (<see cref="EpollConnection.Failure"/>).
/// </summary>
internal sealed class SocketStream(EpollConnection connection, EpollSocket socket) : Stream
{
    private PendingReceive? _receive;
    private PendingSend? _send;

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<int>(cancellationToken);
        }
        if (TryReceive(buffer.Span, out var received))
        {
            return new ValueTask<int>(received);
        }
        var pending = _receive ??= new PendingReceive(this, socket);
        pending.Buffer = buffer;
        return pending.RunAsync(cancellationToken);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }
        var sent = TrySend(buffer.Span);
        if (sent == buffer.Length)
        {
            return ValueTask.CompletedTask;
        }
        var pending = _send ??= new PendingSend(this, socket);
        pending.Rest = buffer[sent..];
        return pending.RunUntypedAsync(cancellationToken);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override void Flush()
    {
    }

    /// <summary>One receive: true with the count (0: the peer's FIN, or a zero-byte read that found the socket readable), false when nothing is there yet.</summary>
    private bool TryReceive(Span<byte> buffer, out int received)
    {
        received = 0;
        if (connection.AbortReason is { } aborted)
        {
            throw aborted;
        }
        if (buffer.IsEmpty)
        {
            return socket.MaybeReadable;
        }
        try
        {
            received = socket.TryReceive(buffer);
        }
        catch (SocketException ex)
        {
            connection.OnPeerClosed();
            throw connection.Failure(ex);
        }
        if (received == 0)
        {
            connection.OnPeerClosed();
        }
        return received >= 0;
    }

    /// <summary>Sends as much as the kernel takes: the count (less than asked when it is full).</summary>
    private int TrySend(ReadOnlySpan<byte> data)
    {
        var total = 0;
        while (total < data.Length)
        {
            if (connection.AbortReason is { } aborted)
            {
                throw aborted;
            }
            int sent;
            try
            {
                sent = socket.TrySend(data[total..]);
            }
            catch (SocketException ex)
            {
                connection.OnPeerClosed();
                throw connection.Failure(ex);
            }
            if (sent < 0)
            {
                break;
            }
            total += sent;
        }
        return total;
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <summary>
    /// A synchronous write, which only a pipe writer completing with bytes it had not flushed makes
    /// (Kestrel flushes before it completes): what the kernel takes at once. Waiting for room here
    /// could block the loop thread, so the rest fails as a send to a peer that stopped reading does.
    /// </summary>
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (TrySend(buffer) < buffer.Length)
        {
            throw new IOException("The peer is not taking the connection's last bytes.");
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>The stream's one pending read, retried on each read edge.</summary>
    private sealed class PendingReceive(SocketStream stream, EpollSocket socket) : ReadinessOperation<int>
    {
        public Memory<byte> Buffer { get; set; }

        protected override ValueTask WaitAsync(CancellationToken cancellationToken) => socket.WaitReadableAsync(cancellationToken);

        protected override bool TryComplete(out int result) => stream.TryReceive(Buffer.Span, out result);
    }

    /// <summary>The stream's one pending write: the rest goes on each write edge.</summary>
    private sealed class PendingSend(SocketStream stream, EpollSocket socket) : ReadinessOperation<bool>
    {
        public ReadOnlyMemory<byte> Rest { get; set; }

        protected override ValueTask WaitAsync(CancellationToken cancellationToken) => socket.WaitWritableAsync(cancellationToken);

        protected override bool TryComplete(out bool result)
        {
            Rest = Rest[stream.TrySend(Rest.Span)..];
            result = Rest.IsEmpty;
            return result;
        }
    }
}
