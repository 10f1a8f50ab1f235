namespace EdgeProxy.Configuration;

/// <summary>
/// Watches files through their directories and runs one callback once the events of a change have
/// settled: an editor's save, a `kubectl`-style or ACME client's rename over the old file, or a
/// re-pointed symlink (certbot's `live/` links, Kubernetes volumes) each raise several events, and
/// the callback runs once, <see cref="Debounce"/> after the last. The backends.json watcher and the
/// TLS certificate watcher both use it; what they reload, and how they keep the last good version,
/// is theirs.
/// </summary>
internal sealed class DebouncedFileWatcher(TimeProvider time, Action changed) : IDisposable
{
    public static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(250);

    private readonly Lock _gate = new();
    private readonly List<FileSystemWatcher> _watchers = [];
    private ITimer? _timer;
    private bool _disposed;

    /// <summary>Watches <paramref name="directory"/>, or one file in it; throws what FileSystemWatcher throws.</summary>
    public void Watch(string directory, string? fileName = null)
    {
        var watcher = fileName is null ? new FileSystemWatcher(directory) : new FileSystemWatcher(directory, fileName);
        watcher.NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime;
        watcher.Changed += (_, _) => Schedule(Debounce, changed);
        watcher.Created += (_, _) => Schedule(Debounce, changed);
        watcher.Renamed += (_, _) => Schedule(Debounce, changed);
        watcher.Deleted += (_, _) => Schedule(Debounce, changed);
        lock (_gate)
        {
            if (_disposed)
            {
                watcher.Dispose();
                return;
            }
            _watchers.Add(watcher);
        }
        watcher.EnableRaisingEvents = true;
    }

    /// <summary>Runs <paramref name="action"/> after <paramref name="delay"/> unless something is scheduled again first.</summary>
    public void Schedule(TimeSpan delay, Action action)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _timer?.Dispose();
            _timer = time.CreateTimer(static state => ((Action)state!)(), action, delay, Timeout.InfiniteTimeSpan);
        }
    }

    public void Dispose()
    {
        lock (_gate)
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
