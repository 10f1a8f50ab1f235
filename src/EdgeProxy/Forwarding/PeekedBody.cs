using System.Buffers;
using EdgeProxy.Balancing;
using EdgeProxy.Configuration;

namespace EdgeProxy.Forwarding;

/// <summary>
/// A request body whose opening was read ahead for affinity "prefix" (<see cref="ConversationKey"/>):
/// the read-ahead bytes, then the rest of the client's body as it arrives; the body is still
/// streamed, never held whole. Reading ahead waits on the client's time (CLIENT_BODY_TIMEOUT) with
/// a timer of its own, so it never touches the exchange's timer; a failure while reading ahead is
/// kept and raised where the upstream copy reads it, so the exchange classifies it exactly like a
/// body failing later (408, 413, client gone) and the backend is never blamed for it.
/// </summary>
internal sealed class PeekedBody : Stream
{
    private readonly Stream? _rest;
    private byte[]? _buffer;
    private int _offset;
    private readonly int _length;
    private Exception? _failure;

    private PeekedBody(byte[] buffer, int length, Stream? rest, Exception? failure)
    {
        _buffer = buffer;
        _length = length;
        _rest = rest;
        _failure = failure;
    }

    /// <summary>
    /// Reads up to <see cref="ConversationKey.PeekBytes"/> of <paramref name="body"/>; returns the
    /// conversation key (null when the opening holds none), the key of its shared opening
    /// (<see cref="ConversationKey.TryCompute(ReadOnlySpan{byte}, bool, out ulong, out ulong)"/>) and the body to send upstream instead.
    /// </summary>
    public static async ValueTask<(ulong? Key, ulong Opening, PeekedBody Body)> ReadAsync(Stream body, GatewaySettings settings, CancellationToken clientAborted)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ConversationKey.PeekBytes);
        var length = 0;
        var ended = false;
        Exception? failure = null;
        using (var timer = CancellationTokenSource.CreateLinkedTokenSource(clientAborted))
        {
            timer.CancelAfter(settings.ClientBodyTimeout);
            try
            {
                while (length < ConversationKey.PeekBytes)
                {
                    var read = await body.ReadAsync(buffer.AsMemory(length, ConversationKey.PeekBytes - length), timer.Token).ConfigureAwait(false);
                    if (read == 0)
                    {
                        ended = true;
                        break;
                    }
                    length += read;
                }
            }
            catch (Exception ex)
            {
                failure = ex;
            }
        }
        ulong opening = 0;
        var key = failure is null && ConversationKey.TryCompute(buffer.AsSpan(0, length), ended, out var k, out opening) ? k : (ulong?)null;
        return (key, opening, new PeekedBody(buffer, length, ended ? null : body, failure));
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        if (_buffer is { } buffer && _offset < _length)
        {
            var count = Math.Min(destination.Length, _length - _offset);
            buffer.AsSpan(_offset, count).CopyTo(destination.Span);
            _offset += count;
            return count;
        }
        ReturnBuffer();
        if (_failure is { } failure)
        {
            _failure = null;
            throw failure;
        }
        return _rest is null ? 0 : await _rest.ReadAsync(destination, cancellationToken).ConfigureAwait(false);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

    protected override void Dispose(bool disposing)
    {
        ReturnBuffer();
        base.Dispose(disposing);
    }

    private void ReturnBuffer()
    {
        if (_buffer is { } buffer)
        {
            _buffer = null;
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
