using System.Runtime.InteropServices;

namespace EdgeProxy.Transport;

/// <summary>
/// struct epoll_event, whose layout the kernel fixes per architecture: packed on x86-64 (12 bytes,
/// data at offset 4; the kernel's EPOLL_PACKED keeps the i386 layout so 32-bit programs share it,
/// include/uapi/linux/eventpoll.h), the same 12 bytes on i386 where a u64 is 4-aligned anyway, and
/// naturally aligned everywhere else (16 bytes: events, 4 bytes of padding, data at offset 8), arm64
/// among them. Read with the other layout's stride, every event after the first in a batch is garbage.
/// </summary>
internal static unsafe class EpollEvent
{
    /// <summary>
    /// True where the kernel's struct is the packed one. A constant in the compiled binary (the
    /// runtime library is built per architecture), so the choice costs nothing where it is made.
    /// </summary>
    public static bool IsPacked => RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.X86;

    /// <summary>The struct's size on this architecture (what epoll_wait strides by).</summary>
    public static int Size => IsPacked ? sizeof(PackedEpollEvent) : sizeof(AlignedEpollEvent);

    /// <summary>epoll_ctl with an event in this architecture's layout.</summary>
    public static int Control(int epoll, int op, int fd, uint events, ulong data)
        => IsPacked ? Control<PackedEpollEvent>(epoll, op, fd, events, data) : Control<AlignedEpollEvent>(epoll, op, fd, events, data);

    private static int Control<TEvent>(int epoll, int op, int fd, uint events, ulong data)
        where TEvent : unmanaged, IEpollEvent<TEvent>
    {
        var ev = TEvent.Create(events, data);
        return Libc.epoll_ctl(epoll, op, fd, &ev);
    }
}

/// <summary>
/// One of the two epoll_event layouts. Code that reads a batch is generic over it, so the layout is
/// chosen once (<see cref="EpollEvent.IsPacked"/>) and the loop over the events has no branch.
/// </summary>
internal interface IEpollEvent<TSelf> where TSelf : unmanaged, IEpollEvent<TSelf>
{
    uint Events { get; }

    ulong Data { get; }

    static abstract TSelf Create(uint events, ulong data);
}

/// <summary>epoll_event on x86-64 and i386: 12 bytes, data at offset 4.</summary>
[StructLayout(LayoutKind.Explicit, Size = 12)]
internal readonly struct PackedEpollEvent : IEpollEvent<PackedEpollEvent>
{
    [FieldOffset(0)] private readonly uint _events;
    [FieldOffset(4)] private readonly ulong _data;

    private PackedEpollEvent(uint events, ulong data) => (_events, _data) = (events, data);

    public uint Events => _events;

    public ulong Data => _data;

    public static PackedEpollEvent Create(uint events, ulong data) => new(events, data);
}

/// <summary>epoll_event on every other architecture (arm64, arm, riscv64, ...): 16 bytes, data at offset 8.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal readonly struct AlignedEpollEvent : IEpollEvent<AlignedEpollEvent>
{
    [FieldOffset(0)] private readonly uint _events;
    [FieldOffset(8)] private readonly ulong _data;

    private AlignedEpollEvent(uint events, ulong data) => (_events, _data) = (events, data);

    public uint Events => _events;

    public ulong Data => _data;

    public static AlignedEpollEvent Create(uint events, ulong data) => new(events, data);
}
