using System.Threading.Channels;
using EdgeProxy.Forwarding;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>The pooled copy loop: exact bytes, clear failure outcomes, per-chunk observer, no buffer while idle.</summary>
public sealed class StreamCopierTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    /// <summary>A source that returns short reads of random size and records every buffer length it is asked to fill.</summary>
    private sealed class ChunkedSource(byte[] data, Random random, int maxChunk, int failOnRead = -1) : Stream
    {
        private int _position;

        public List<int> Requested { get; } = [];

        public List<int> Returned { get; } = [];

        public IOException Failure { get; } = new("source broke");

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Requested.Add(buffer.Length);
            if (buffer.Length == 0)
            {
                return ValueTask.FromResult(0);
            }
            if (Returned.Count == failOnRead)
            {
                throw Failure;
            }
            var n = Math.Min(Math.Min(buffer.Length, data.Length - _position), random.Next(1, maxChunk + 1));
            data.AsSpan(_position, n).CopyTo(buffer.Span);
            _position += n;
            Returned.Add(n);
            return ValueTask.FromResult(n);
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("sync read");

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

    /// <summary>
    /// A source fed by the test, like a model that is thinking: a zero-byte read blocks until data
    /// arrives (as sockets do). Signals every read request so the test waits on events, not time.
    /// </summary>
    private sealed class ScriptedSource : Stream
    {
        private readonly Channel<byte[]> _chunks = Channel.CreateUnbounded<byte[]>();
        private readonly Channel<int> _requests = Channel.CreateUnbounded<int>();

        public List<int> Requested { get; } = [];

        public void Send(byte[] chunk) => Assert.True(_chunks.Writer.TryWrite(chunk));

        public void End() => _chunks.Writer.Complete();

        /// <summary>Waits until the copier asks for the next read and returns the buffer length it offered.</summary>
        public async Task<int> NextRequestAsync() => await _requests.Reader.ReadAsync().AsTask().WaitAsync(Patience);

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            lock (Requested)
            {
                Requested.Add(buffer.Length);
            }
            _requests.Writer.TryWrite(buffer.Length);
            if (buffer.Length == 0)
            {
                await _chunks.Reader.WaitToReadAsync(cancellationToken);
                return 0;
            }
            if (!_chunks.Reader.TryRead(out var chunk))
            {
                if (!await _chunks.Reader.WaitToReadAsync(cancellationToken) || !_chunks.Reader.TryRead(out chunk))
                {
                    return 0;
                }
            }
            Assert.True(chunk.Length <= buffer.Length);
            chunk.CopyTo(buffer.Span);
            return chunk.Length;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("sync read");

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

    /// <summary>A destination that records writes and flushes and can fail on a given write.</summary>
    private sealed class RecordingDestination(int failOnWrite = -1) : MemoryStream
    {
        public int Writes { get; private set; }

        public int Flushes { get; private set; }

        public IOException Failure { get; } = new("destination broke");

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (Writes++ == failOnWrite)
            {
                throw Failure;
            }
            return base.WriteAsync(buffer, cancellationToken);
        }

        public override Task FlushAsync(CancellationToken cancellationToken)
        {
            Flushes++;
            return Task.CompletedTask;
        }
    }

    private sealed class RecordingObserver : ICopyObserver
    {
        public List<byte[]> Chunks { get; } = [];

        /// <summary>The waits and chunks in order: "r" before each read, "w" before each write, "c" after it.</summary>
        public System.Text.StringBuilder Events { get; } = new();

        public void OnReading() => Events.Append('r');

        public void OnWriting() => Events.Append('w');

        public void OnChunk(ReadOnlySpan<byte> chunk)
        {
            Events.Append('c');
            Chunks.Add(chunk.ToArray());
        }
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(1, 1)]
    [InlineData(1000, 7)]
    [InlineData(65_535, 65_536)]
    [InlineData(65_536, 65_536)]
    [InlineData(65_537, 100_000)]
    [InlineData(1_048_579, 40_000)]
    [InlineData(3_000_001, 200_000)]
    public async Task Copies_every_byte_in_order(int size, int maxChunk)
    {
        var random = new Random(size);
        var data = new byte[size];
        random.NextBytes(data);
        var source = new ChunkedSource(data, random, maxChunk);
        var destination = new RecordingDestination();
        var observer = new RecordingObserver();

        var result = await StreamCopier.CopyAsync(source, destination, flush: false, observer, default, default);

        Assert.Equal(StreamCopyOutcome.Completed, result.Outcome);
        Assert.Null(result.Exception);
        Assert.Equal(size, result.Bytes);
        Assert.Equal(data, destination.ToArray());
        Assert.Equal(source.Returned.Count(n => n > 0), observer.Chunks.Count);
        Assert.Equal(data, observer.Chunks.SelectMany(c => c).ToArray());
        Assert.Equal(0, destination.Flushes);
        // Each chunk: the wait for the source, then for the destination, then the chunk; and one
        // last wait for the source that finds the end (the request-body timers hang on this order).
        Assert.Equal(string.Concat(Enumerable.Repeat("rwc", observer.Chunks.Count)) + "r", observer.Events.ToString());
    }

    [Fact]
    public async Task Flushes_after_every_chunk_when_asked()
    {
        var data = new byte[10_000];
        var source = new ChunkedSource(data, new Random(3), 1_000);
        var destination = new RecordingDestination();
        await StreamCopier.CopyAsync(source, destination, flush: true, null, default, default);
        Assert.Equal(source.Returned.Count(n => n > 0), destination.Flushes);
        Assert.True(destination.Flushes >= 10);
    }

    [Fact]
    public async Task Every_real_read_follows_a_zero_byte_read()
    {
        var data = new byte[300_000];
        var source = new ChunkedSource(data, new Random(9), 50_000);
        await StreamCopier.CopyAsync(source, new RecordingDestination(), flush: false, null, default, default);

        // 0, N, 0, N, ... : the buffer is rented only after data is known to be there, and given
        // back after each chunk.
        Assert.True(source.Requested.Count >= 2 && source.Requested.Count % 2 == 0);
        for (var i = 0; i < source.Requested.Count; i++)
        {
            if (i % 2 == 0)
            {
                Assert.Equal(0, source.Requested[i]);
            }
            else
            {
                Assert.True(source.Requested[i] >= StreamCopier.BufferSize, $"read {i} offered {source.Requested[i]} bytes");
            }
        }
    }

    [Fact]
    public async Task An_idle_source_holds_no_buffer()
    {
        var source = new ScriptedSource();
        var destination = new RecordingDestination();
        var observer = new RecordingObserver();
        var copy = StreamCopier.CopyAsync(source, destination, flush: true, observer, default, default).AsTask();

        // Idle: the only read asked for is the zero-byte one, so no pooled buffer was handed out.
        Assert.Equal(0, await source.NextRequestAsync());
        Assert.False(copy.IsCompleted);
        Assert.Equal([0], source.Requested);
        Assert.Empty(observer.Chunks);

        // A chunk arrives: one buffered read, written, observed and flushed; then idle again.
        source.Send("data: hello\n\n"u8.ToArray());
        Assert.True(await source.NextRequestAsync() >= StreamCopier.BufferSize);
        Assert.Equal(0, await source.NextRequestAsync());
        Assert.Equal("data: hello\n\n"u8.ToArray(), Assert.Single(observer.Chunks));
        Assert.Equal(1, destination.Flushes);
        Assert.False(copy.IsCompleted);

        source.Send("data: [DONE]\n\n"u8.ToArray());
        Assert.True(await source.NextRequestAsync() >= StreamCopier.BufferSize);
        Assert.Equal(0, await source.NextRequestAsync());
        source.End();

        var result = await copy.WaitAsync(Patience);
        Assert.Equal(StreamCopyOutcome.Completed, result.Outcome);
        Assert.Equal("data: hello\n\ndata: [DONE]\n\n"u8.ToArray(), destination.ToArray());
        Assert.Equal(2, observer.Chunks.Count);
    }

    [Fact]
    public async Task A_failing_source_gives_read_failed_with_its_exception()
    {
        var data = new byte[100_000];
        new Random(1).NextBytes(data);
        var source = new ChunkedSource(data, new Random(2), 10_000, failOnRead: 2);
        var destination = new RecordingDestination();
        var observer = new RecordingObserver();

        var result = await StreamCopier.CopyAsync(source, destination, flush: false, observer, default, default);

        Assert.Equal(StreamCopyOutcome.ReadFailed, result.Outcome);
        Assert.Same(source.Failure, result.Exception);
        var delivered = source.Returned.Sum();
        Assert.Equal(delivered, result.Bytes);
        Assert.Equal(data.AsSpan(0, delivered).ToArray(), destination.ToArray());
        Assert.Equal(2, observer.Chunks.Count);
    }

    [Fact]
    public async Task A_failing_destination_gives_write_failed_with_its_exception()
    {
        var data = new byte[100_000];
        var source = new ChunkedSource(data, new Random(4), 10_000);
        var destination = new RecordingDestination(failOnWrite: 1);
        var observer = new RecordingObserver();

        var result = await StreamCopier.CopyAsync(source, destination, flush: false, observer, default, default);

        Assert.Equal(StreamCopyOutcome.WriteFailed, result.Outcome);
        Assert.Same(destination.Failure, result.Exception);
        // The chunk that could not be written is not reported as forwarded; nothing is read after the failure.
        Assert.Single(observer.Chunks);
        Assert.Equal(source.Returned[0], destination.ToArray().Length);
        Assert.Equal(2, source.Returned.Count);
    }

    [Fact]
    public async Task Cancelled_read_gives_read_failed()
    {
        var source = new ScriptedSource();
        using var cts = new CancellationTokenSource();
        var copy = StreamCopier.CopyAsync(source, new RecordingDestination(), flush: false, null, cts.Token, default).AsTask();
        Assert.Equal(0, await source.NextRequestAsync());
        cts.Cancel();
        var result = await copy.WaitAsync(Patience);
        Assert.Equal(StreamCopyOutcome.ReadFailed, result.Outcome);
        Assert.IsAssignableFrom<OperationCanceledException>(result.Exception);
        Assert.Equal(0, result.Bytes);
    }

    [Fact]
    public async Task Cancelled_write_gives_write_failed()
    {
        var source = new ChunkedSource(new byte[10], new Random(5), 10);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var result = await StreamCopier.CopyAsync(source, new MemoryStreamHonouringCancellation(), flush: false, null, default, cts.Token);
        Assert.Equal(StreamCopyOutcome.WriteFailed, result.Outcome);
        Assert.IsAssignableFrom<OperationCanceledException>(result.Exception);
    }

    private sealed class MemoryStreamHonouringCancellation : MemoryStream
    {
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            cancellationToken.ThrowIfCancellationRequested();
            return base.WriteAsync(buffer, cancellationToken);
        }
    }

    [Fact]
    public async Task With_a_declared_length_the_copy_ends_at_the_last_byte_without_reading_again()
    {
        var data = new byte[10_000];
        Random.Shared.NextBytes(data);
        var source = new ChunkedSource(data, new Random(7), maxChunk: 3000);
        var destination = new MemoryStream();
        var result = await StreamCopier.CopyAsync(source, destination, flush: false, null, default, default, expectedLength: data.Length);
        Assert.Equal(StreamCopyOutcome.Completed, result.Outcome);
        Assert.Equal(data.Length, result.Bytes);
        Assert.Equal(data, destination.ToArray());
        Assert.Equal(data.Length, source.Returned.Sum());
        Assert.DoesNotContain(0, source.Returned);   // no end-of-stream read was needed
    }

    [Fact]
    public async Task A_body_shorter_than_declared_still_ends_at_end_of_stream()
    {
        var data = new byte[500];
        var source = new ChunkedSource(data, new Random(3), maxChunk: 100);
        var destination = new MemoryStream();
        var result = await StreamCopier.CopyAsync(source, destination, flush: false, null, default, default, expectedLength: 600);
        Assert.Equal(StreamCopyOutcome.Completed, result.Outcome);
        Assert.Equal(500, result.Bytes);
    }
}
