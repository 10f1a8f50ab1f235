using System.Buffers;

namespace EdgeProxy.Forwarding;

/// <summary>
/// The pooled copy loop. Before renting a buffer it issues a zero-byte read, which completes only
/// when data is available: an idle stream (a model thinking, a client typing) holds no buffer.
/// Each chunk is written as soon as it is read — nothing accumulates in the gateway.
/// </summary>
internal static class StreamCopier
{
    /// <summary>64 KiB: large enough for bulk bodies in few syscalls; SSE chunks use a fraction of it.</summary>
    public const int BufferSize = 64 * 1024;

    /// <summary>Copies <paramref name="source"/> to <paramref name="destination"/> until the end of the source.</summary>
    /// <param name="readToken">Cancels reads (timeouts, client gone).</param>
    /// <param name="writeToken">Cancels writes.</param>
    /// <param name="flush">Flush the destination after every chunk (upstream request bodies).</param>
    /// <param name="observer">Sees the waits and each chunk after it was written (timers, token accounting); may be null.</param>
    /// <param name="expectedLength">
    /// The body's declared length (Content-Length), when known: the copy ends as soon as that many
    /// bytes went through, without the two further reads (zero-byte, then end-of-stream) it would
    /// otherwise take to learn what the length already says. HttpClient's length-delimited stream
    /// has already returned the connection to its pool when the last byte was read.
    /// </param>
    public static async ValueTask<StreamCopyResult> CopyAsync(
        Stream source,
        Stream destination,
        bool flush,
        ICopyObserver? observer,
        CancellationToken readToken,
        CancellationToken writeToken,
        long? expectedLength = null)
    {
        byte[]? buffer = null;
        long total = 0;
        try
        {
            while (true)
            {
                int read;
                observer?.OnReading();
                try
                {
                    if (buffer is null)
                    {
                        // Zero-byte read: wait for data without holding a buffer.
                        await source.ReadAsync(Memory<byte>.Empty, readToken).ConfigureAwait(false);
                        buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
                    }
                    read = await source.ReadAsync(buffer.AsMemory(), readToken).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    return new StreamCopyResult(StreamCopyOutcome.ReadFailed, total, ex);
                }
                if (read == 0)
                {
                    return new StreamCopyResult(StreamCopyOutcome.Completed, total, null);
                }
                total += read;
                observer?.OnWriting();
                try
                {
                    await destination.WriteAsync(buffer.AsMemory(0, read), writeToken).ConfigureAwait(false);
                    if (flush)
                    {
                        await destination.FlushAsync(writeToken).ConfigureAwait(false);
                    }
                }
                catch (Exception ex)
                {
                    return new StreamCopyResult(StreamCopyOutcome.WriteFailed, total, ex);
                }
                observer?.OnChunk(buffer.AsSpan(0, read));
                if (total == expectedLength)
                {
                    return new StreamCopyResult(StreamCopyOutcome.Completed, total, null);
                }

                // Give the buffer back between chunks so an idle stream holds none.
                ArrayPool<byte>.Shared.Return(buffer);
                buffer = null;
            }
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }
}

/// <summary>Sees a copy loop wait for its source, then for its destination, and every chunk after it was written (timers, token accounting).</summary>
internal interface ICopyObserver
{
    /// <summary>The copy is about to wait for the source's next bytes.</summary>
    void OnReading()
    {
    }

    /// <summary>A chunk was read; the copy is about to wait for the destination to take it.</summary>
    void OnWriting()
    {
    }

    void OnChunk(ReadOnlySpan<byte> chunk)
    {
    }
}

internal enum StreamCopyOutcome
{
    Completed,
    ReadFailed,
    WriteFailed,
}

internal readonly record struct StreamCopyResult(StreamCopyOutcome Outcome, long Bytes, Exception? Exception);
