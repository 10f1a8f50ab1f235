using System.Buffers;

namespace EdgeProxy.Transport;

/// <summary>A pooled array in a chain of buffered bytes (the transport's reader and writer).</summary>
internal sealed class BufferSegment : ReadOnlySequenceSegment<byte>
{
    public byte[] Array { get; private set; } = [];

    /// <summary>
    /// A segment with a freshly rented array: <paramref name="spare"/> (a released segment the owner
    /// kept) when there is one, so steady traffic allocates no segment objects.
    /// </summary>
    public static BufferSegment Rent(ref BufferSegment? spare, int size, long runningIndex)
    {
        var segment = spare ?? new BufferSegment();
        spare = null;
        segment.Array = ArrayPool<byte>.Shared.Rent(size);
        segment.RunningIndex = runningIndex;
        segment.End = 0;
        segment.Start = 0;
        segment.Memory = ReadOnlyMemory<byte>.Empty;
        return segment;
    }

    /// <summary>Bytes written into <see cref="Array"/>.</summary>
    public int End { get; private set; }

    /// <summary>Bytes of the array already sent (the writer's progress).</summary>
    public int Start { get; set; }

    public int Free => Array.Length - End;

    public BufferSegment? NextSegment => (BufferSegment?)Next;

    public void Grow(int count)
    {
        End += count;
        Memory = Array.AsMemory(0, End);
    }

    public void Append(BufferSegment next) => Next = next;

    /// <summary>Releases <paramref name="first"/> and every segment after it.</summary>
    public static void ReleaseChain(BufferSegment? first, ref BufferSegment? spare)
    {
        for (var segment = first; segment is not null;)
        {
            var next = segment.NextSegment;
            segment.Release(ref spare);
            segment = next;
        }
    }

    /// <summary>The array goes back to the pool; the segment object becomes the owner's spare.</summary>
    public void Release(ref BufferSegment? spare)
    {
        ArrayPool<byte>.Shared.Return(Array);
        Array = [];
        Memory = ReadOnlyMemory<byte>.Empty;
        Next = null;
        spare = this;
    }
}
