using System.Runtime.InteropServices;

namespace EdgeProxy.Transport;

/// <summary>
/// One event-loop thread: an epoll set in edge-triggered mode whose readiness events resume the
/// operations parked on its sockets, inline on this thread (as nginx's worker runs its handlers), so
/// a request is read, relayed upstream and answered without a hop to another thread. Sockets are
/// found by slot and generation, never by pointer, so an event for a socket closed earlier in the
/// same batch is dropped instead of reaching a newer socket that took its slot.
/// </summary>
internal sealed unsafe class EpollLoop : IDisposable
{
    private const int MaxEvents = 256;

    private readonly int _epoll;
    private readonly int _wakeFd;
    private readonly Thread _thread;
    private readonly Lock _slotsLock = new();
    private EpollSocket?[] _slots = new EpollSocket?[64];
    private readonly Stack<int> _freeSlots = new();
    private int _nextSlot;
    private uint _generation;
    private volatile bool _stopping;

    public EpollLoop(string name)
    {
        _epoll = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
        if (_epoll < 0)
        {
            throw Libc.SocketError(Libc.Errno);
        }
        _wakeFd = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        EpollEvent.Control(_epoll, Libc.EPOLL_CTL_ADD, _wakeFd, Libc.EPOLLIN, ulong.MaxValue);
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.UnsafeStart();
    }

    /// <summary>True on this loop's own thread.</summary>
    public bool IsCurrentThread => Environment.CurrentManagedThreadId == _thread.ManagedThreadId;

    /// <summary>Adds a socket to the set (edge-triggered: each arrival or freed send space is one event).</summary>
    public void Register(EpollSocket socket)
    {
        int slot;
        uint generation;
        lock (_slotsLock)
        {
            if (!_freeSlots.TryPop(out slot))
            {
                slot = _nextSlot++;
                if (slot == _slots.Length)
                {
                    var grown = new EpollSocket?[_slots.Length * 2];
                    _slots.CopyTo(grown, 0);
                    Volatile.Write(ref _slots, grown);
                }
            }
            generation = ++_generation;
            _slots[slot] = socket;
        }
        socket.Slot = slot;
        socket.Generation = generation;
        var events = Libc.EPOLLIN | Libc.EPOLLOUT | Libc.EPOLLRDHUP | Libc.EPOLLET;
        if (EpollEvent.Control(_epoll, Libc.EPOLL_CTL_ADD, socket.Fd, events, ((ulong)generation << 32) | (uint)slot) != 0)
        {
            var errno = Libc.Errno;
            Unregister(socket);
            throw Libc.SocketError(errno);
        }
    }

    /// <summary>Takes the socket out of the set before its descriptor is closed.</summary>
    public void Unregister(EpollSocket socket)
    {
        Libc.epoll_ctl(_epoll, Libc.EPOLL_CTL_DEL, socket.Fd, null);
        lock (_slotsLock)
        {
            if (_slots[socket.Slot] == socket)
            {
                _slots[socket.Slot] = null;
                _freeSlots.Push(socket.Slot);
            }
        }
    }

    private void Run()
    {
        // The kernel's struct epoll_event differs by architecture: pick it once, so the loop reads
        // each batch at a fixed stride with no per-event branch.
        if (EpollEvent.IsPacked)
        {
            Run<PackedEpollEvent>();
        }
        else
        {
            Run<AlignedEpollEvent>();
        }
    }

    private void Run<TEvent>() where TEvent : unmanaged, IEpollEvent<TEvent>
    {
        var events = (TEvent*)NativeMemory.Alloc(MaxEvents, (nuint)sizeof(TEvent));
        try
        {
            while (!_stopping)
            {
                var count = Libc.epoll_wait(_epoll, events, MaxEvents, -1);
                if (count < 0)
                {
                    if (Libc.Errno == Libc.EINTR)
                    {
                        continue;
                    }
                    return;
                }
                var slots = Volatile.Read(ref _slots);
                for (var i = 0; i < count; i++)
                {
                    var data = events[i].Data;
                    if (data == ulong.MaxValue)
                    {
                        continue;   // the wake-up descriptor: only _stopping matters
                    }
                    var slot = (int)(uint)data;
                    var generation = (uint)(data >> 32);
                    var socket = slot < slots.Length ? Volatile.Read(ref slots[slot]) : null;
                    if (socket is null || socket.Generation != generation)
                    {
                        // The table may have grown since this batch began, with the slot reused in the
                        // new array only: look again before dropping an edge (a lost edge is a hang).
                        slots = Volatile.Read(ref _slots);
                        socket = slot < slots.Length ? Volatile.Read(ref slots[slot]) : null;
                    }
                    if (socket is not null && socket.Generation == generation)
                    {
                        try
                        {
                            socket.OnEvents(events[i].Events);
                        }
                        catch (Exception ex)
                        {
                            // Async continuations capture their own exceptions; anything that still escapes
                            // must not end the loop every other socket on it depends on.
                            Console.Error.WriteLine($"epoll loop: a continuation threw {ex.GetType().Name}: {ex.Message}");
                        }
                    }
                }
            }
        }
        finally
        {
            NativeMemory.Free(events);
        }
    }

    public void Dispose()
    {
        _stopping = true;
        ulong one = 1;
        Libc.write(_wakeFd, (byte*)&one, sizeof(ulong));
    }
}

/// <summary>The transport's event loops; new sockets are spread over them in turn.</summary>
internal sealed class EpollLoops : IDisposable
{
    private readonly EpollLoop[] _loops;
    private uint _next;

    public EpollLoops(int count)
    {
        _loops = new EpollLoop[Math.Max(1, count)];
        for (var i = 0; i < _loops.Length; i++)
        {
            _loops[i] = new EpollLoop($"edgeproxy-io-{i}");   // thread names show in /proc as 15 characters at most
        }
    }

    /// <summary>The loop the calling thread runs, so an upstream socket opened by a request shares its client's loop; otherwise the next in turn.</summary>
    public EpollLoop Pick()
    {
        foreach (var loop in _loops)
        {
            if (loop.IsCurrentThread)
            {
                return loop;
            }
        }
        return Next();
    }

    public EpollLoop Next() => _loops[(int)(Interlocked.Increment(ref _next) % (uint)_loops.Length)];

    public void Dispose()
    {
        foreach (var loop in _loops)
        {
            loop.Dispose();
        }
    }
}
