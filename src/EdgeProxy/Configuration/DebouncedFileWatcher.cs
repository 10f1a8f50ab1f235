using Microsoft.Extensions.Hosting;

namespace EdgeProxy.Configuration;

/// <summary>
/// A hosted service that watches files through their directories and reloads once the events of a
/// change have settled: an editor's save, a `kubectl`-style or ACME client's rename over the old
/// file, or a re-pointed symlink (certbot's `live/` links, Kubernetes volumes) each raise several
/// events, and <see cref="OnChanged"/> runs once, <see cref="Debounce"/> after the last. The
/// backends.json watcher and the TLS certificate watcher are these; what they reload, and how they
/// keep the last good version, is theirs. Watching starts once the server listens (the host runs
/// StartedAsync after every StartAsync, the web server's included): the watcher's thread and
/// inotify set-up were ~1 ms in front of the first request on the start-up path.
/// </summary>
internal abstract class DebouncedFileWatcher(TimeProvider time) : IHostedLifecycleService, IDisposable
{
    public static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(250);

    private readonly Lock _watchGate = new();
    private readonly List<FileSystemWatcher> _watchers = [];
    private ITimer? _timer;
    private bool _disposed;

    protected TimeProvider Time { get; } = time;

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public abstract Task StartedAsync(CancellationToken cancellationToken);

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The files changed (a timer callback: it must not throw).</summary>
    protected abstract void OnChanged();

    /// <summary>Watches <paramref name="directory"/>, or one file in it; throws what FileSystemWatcher throws.</summary>
    protected void Watch(string directory, string? fileName = null)
    {
        var watcher = new FileSystemWatcher(directory, fileName ?? "*")
        {
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
        };
        FileSystemEventHandler onEvent = (_, _) => Schedule(Debounce, OnChanged);
        watcher.Changed += onEvent;
        watcher.Created += onEvent;
        watcher.Deleted += onEvent;
        watcher.Renamed += (_, _) => Schedule(Debounce, OnChanged);
        watcher.EnableRaisingEvents = true;
        lock (_watchGate)
        {
            _watchers.Add(watcher);
        }
    }

    /// <summary>Runs <paramref name="action"/> after <paramref name="delay"/> unless something is scheduled again first.</summary>
    protected void Schedule(TimeSpan delay, Action action)
    {
        lock (_watchGate)
        {
            if (_disposed)
            {
                return;
            }
            _timer?.Dispose();
            _timer = Time.CreateTimer(static state => ((Action)state!)(), action, delay, Timeout.InfiniteTimeSpan);
        }
    }

    public virtual void Dispose()
    {
        lock (_watchGate)
        {
            _disposed = true;
            foreach (var watcher in _watchers)
            {
                watcher.Dispose();
            }
            _watchers.Clear();
            _timer?.Dispose();
            _timer = null;
        }
    }
}
