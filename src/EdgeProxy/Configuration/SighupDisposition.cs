using System.Runtime.InteropServices;

namespace EdgeProxy.Configuration;

/// <summary>
/// SIGHUP inherited as ignored. `nohup` (and supervisors that copy it) start the process with SIGHUP
/// set to SIG_IGN, and the runtime respects an ignored signal: PosixSignalRegistration then installs
/// no handler at all (dotnet/runtime pal_signal.c, InstallSignalHandler: "We respect ignored
/// signals"), so `kill -HUP` did nothing and with WATCH_CONFIG=false no reload was possible. For
/// this gateway SIGHUP means "reload", not "hang up": the watcher puts the disposition back to the
/// default right before it registers its handler. Only an ignored SIGHUP is touched; a handler
/// already installed (the runtime's own, when a host is built twice in one process) is left alone.
/// </summary>
internal static unsafe partial class SighupDisposition
{
    private const int SIGHUP = 1;
    private static readonly nint SigDfl = 0;
    private static readonly nint SigIgn = 1;

    /// <summary>Resets SIGHUP from SIG_IGN to SIG_DFL; true when it was ignored.</summary>
    public static bool ResetIfIgnored()
    {
        if (OperatingSystem.IsWindows())
        {
            return false;
        }
        SigAction current;
        if (sigaction(SIGHUP, null, &current) != 0 || current.Handler != SigIgn)
        {
            return false;
        }
        return signal(SIGHUP, SigDfl) == SigIgn;
    }

    /// <summary>
    /// struct sigaction, read only: its first member is the handler (sa_handler / sa_sigaction union)
    /// in glibc, musl and the BSDs; the size covers the largest layout (glibc's 152 bytes).
    /// </summary>
    [StructLayout(LayoutKind.Sequential, Size = 256)]
    private struct SigAction
    {
        public nint Handler;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sigaction(int signum, SigAction* action, SigAction* previous);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint signal(int signum, nint handler);
}
