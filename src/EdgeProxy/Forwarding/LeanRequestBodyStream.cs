using System.Buffers;
using System.Net.Sockets;

namespace EdgeProxy.Forwarding;

/// <summary>
/// Writes a request body to the upstream socket as the content produces it: raw when the length is
/// known, otherwise chunked (RFC 9112 §7.1), each chunk framed and sent with one send.
/// </summary>
internal sealed class LeanRequestBodyStream(LeanConnection connection, bool chunked) : Stream
{
    private static readonly byte[] LastChunk = "0\r\n\r\n"u8.ToArray();

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        if (data.IsEmpty)
        {
            return;
        }
        try
        {
            if (!chunked)
            {
                await connection.SendAllAsync(data, cancellationToken).ConfigureAwait(false);
                return;
            }
            var frame = ArrayPool<byte>.Shared.Rent(data.Length + 20);
            try
            {
                var n = 0;
                data.Length.TryFormat(frame, out var written, "X");
                n += written;
                frame[n++] = (byte)'\r';
                frame[n++] = (byte)'\n';
                data.Span.CopyTo(frame.AsSpan(n));
                n += data.Length;
                frame[n++] = (byte)'\r';
                frame[n++] = (byte)'\n';
                await connection.SendAllAsync(frame.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(frame);
            }
        }
        catch (SocketException ex)
        {
            throw new IOException("Writing the request body upstream failed: " + ex.Message, ex);
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count)
        => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <summary>Ends a chunked body with the last-chunk and an empty trailer section.</summary>
    public async ValueTask CompleteAsync(CancellationToken cancellationToken)
    {
        if (chunked)
        {
            try
            {
                await connection.SendAllAsync(LastChunk, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException ex)
            {
                throw new IOException("Writing the request body upstream failed: " + ex.Message, ex);
            }
        }
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
