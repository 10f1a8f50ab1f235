using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace EdgeProxy.Forwarding;

/// <summary>
/// A response body read straight off the upstream socket: Content-Length, chunked (RFC 9112 §7.1)
/// or until close. Data is returned as soon as it arrives (a chunk's trailing CRLF is consumed on
/// the next read, never waited for). A zero-byte read waits for data without taking a buffer, so
/// an idle stream holds none. At the clean end the connection goes back to the pool; ending earlier
/// closes it, which is how an abandoned request stops the backend. The fast path keeps one per
/// client connection (<see cref="Begin"/> before each response, <see cref="End"/> after it).
/// </summary>
internal sealed class Http1ResponseBody
{
    private Http1Connection _connection = null!;
    private Http1Framing _framing;
    private bool _keepAlive;
    private long _remaining;   // Length: body bytes left; Chunked: bytes left in the current chunk
    private ChunkState _chunkState;
    private bool _done = true;

    /// <summary>Starts reading the body of the response whose head was just consumed from <paramref name="connection"/>.</summary>
    public void Begin(Http1Connection connection, Http1Framing framing, long length, bool keepAlive)
    {
        _connection = connection;
        _framing = framing;
        _keepAlive = keepAlive;
        _remaining = length;
        _chunkState = ChunkState.Size;
        _done = false;
    }

    /// <summary>
    /// Ends the current response: after its clean end the connection is already back in the pool;
    /// before it (client gone, timeout, failure) the connection's state is unknown and it is closed.
    /// </summary>
    public void End()
    {
        if (!_done)
        {
            _done = true;
            _connection.Abandon();
        }
        _connection = null!;
    }

    private enum ChunkState
    {
        Size,
        Data,
        DataCrlf,
        Trailers,
    }

    /// <summary>Bodies of length 0 (and HEAD/204/304) are complete as soon as the head is parsed.</summary>
    public void CompleteIfEmpty()
    {
        if (_framing == Http1Framing.Length && _remaining == 0)
        {
            Finish();
        }
    }

    /// <summary>
    /// The next bytes of the body (0 at its end); an empty <paramref name="destination"/> waits for
    /// data without a buffer. Bytes already received come back at once, without a socket call.
    /// </summary>
    public ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        if (_done || (destination.IsEmpty && _connection.Buffered > 0))
        {
            return new ValueTask<int>(0);
        }
        if (_framing == Http1Framing.Length && _connection.Buffered > 0)
        {
            return new ValueTask<int>(Counted(_connection.TakeBuffered(destination.Span[..(int)Math.Min(destination.Length, _remaining)])));
        }
        return ReadMoreAsync(destination, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadMoreAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        try
        {
            if (destination.IsEmpty)
            {
                await _connection.Socket.ReceiveAsync(Memory<byte>.Empty, cancellationToken).ConfigureAwait(false);
                return 0;
            }
            if (_framing == Http1Framing.Length)
            {
                return Counted(await ReceiveAsync(destination[..(int)Math.Min(destination.Length, _remaining)], cancellationToken).ConfigureAwait(false));
            }
            if (_framing == Http1Framing.Chunked)
            {
                return await ReadChunkedAsync(destination, cancellationToken).ConfigureAwait(false);
            }
            var n = await ReceiveAsync(destination, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                _done = true;   // the end of a body framed by the connection's close
                _connection.Abandon();
            }
            return n;
        }
        catch (SocketException ex)
        {
            throw new IOException("Reading the upstream response body failed: " + ex.Message, ex);
        }
    }

    /// <summary>Bytes already received first, else what the socket has.</summary>
    private ValueTask<int> ReceiveAsync(Memory<byte> destination, CancellationToken cancellationToken)
        => _connection.Buffered > 0 ? new ValueTask<int>(_connection.TakeBuffered(destination.Span)) : _connection.Socket.ReceiveAsync(destination, cancellationToken);

    /// <summary>Counts down a length-framed body; its end hands the connection back.</summary>
    private int Counted(int n)
    {
        if (n == 0)
        {
            throw new IOException($"The upstream response ended {_remaining} bytes before its Content-Length.");
        }
        _remaining -= n;
        if (_remaining == 0)
        {
            Finish();
        }
        return n;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadChunkedAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        while (true)
        {
            switch (_chunkState)
            {
                case ChunkState.Data:
                {
                    var want = (int)Math.Min(destination.Length, _remaining);
                    var n = await ReceiveAsync(destination[..want], cancellationToken).ConfigureAwait(false);
                    if (n == 0)
                    {
                        throw new IOException("The upstream closed the connection inside a chunk.");
                    }
                    _remaining -= n;
                    if (_remaining == 0)
                    {
                        _chunkState = ChunkState.DataCrlf;
                    }
                    return n;
                }
                case ChunkState.DataCrlf:
                {
                    var line = await ReadLineAsync(cancellationToken).ConfigureAwait(false);
                    if (line != 0)
                    {
                        throw new IOException("Malformed chunked body from upstream (missing CRLF after chunk data).");
                    }
                    _chunkState = ChunkState.Size;
                    break;
                }
                case ChunkState.Size:
                {
                    var lineLength = await ReadLineAsync(cancellationToken).ConfigureAwait(false);
                    _remaining = ParseChunkSize(_connection.BufferedSpan[..lineLength]);
                    _connection.Consume(lineLength + 2);
                    _chunkState = _remaining == 0 ? ChunkState.Trailers : ChunkState.Data;
                    break;
                }
                case ChunkState.Trailers:
                {
                    // Trailer fields are not relayed (the forwarder does not relay trailers); skip to the blank line.
                    var lineLength = await ReadLineAsync(cancellationToken).ConfigureAwait(false);
                    _connection.Consume(lineLength + 2);
                    if (lineLength == 0)
                    {
                        Finish();
                        return 0;
                    }
                    break;
                }
            }
        }
    }

    /// <summary>Waits until the buffer starts with a whole line; returns its length without CRLF (consumes nothing, except an empty CRLF for DataCrlf).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadLineAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var buffered = _connection.BufferedSpan;
            var end = HttpAscii.IndexOfCrlf(buffered);
            if (end >= 0)
            {
                if (end == 0 && _chunkState == ChunkState.DataCrlf)
                {
                    _connection.Consume(2);
                }
                return end;
            }
            if (buffered.Length > 4096)
            {
                throw new IOException("Malformed chunked body from upstream (line too long).");
            }
            var read = await _connection.ReceiveAsync(cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new IOException("The upstream closed the connection inside a chunked body.");
            }
            _connection.Received(read);
        }
    }

    private static long ParseChunkSize(ReadOnlySpan<byte> line)
    {
        // chunk-size [ chunk-ext ]: extensions are ignored (RFC 9112 §7.1.1).
        var semicolon = line.IndexOf((byte)';');
        var digits = (semicolon < 0 ? line : line[..semicolon]).TrimEnd(" \t"u8);
        if (digits.IsEmpty || digits.Length > 15)
        {
            throw new IOException("Malformed chunk size from upstream.");
        }
        long size = 0;
        foreach (var b in digits)
        {
            var v = HexValue(b);
            if (v < 0)
            {
                throw new IOException("Malformed chunk size from upstream.");
            }
            size = (size << 4) | (uint)v;
        }
        return size;
    }

    private static int HexValue(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => -1,
    };

    private void Finish()
    {
        if (!_done)
        {
            _done = true;
            _connection.Release(_keepAlive);
        }
    }
}
