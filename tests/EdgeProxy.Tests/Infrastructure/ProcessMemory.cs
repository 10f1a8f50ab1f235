namespace EdgeProxy.Tests.Infrastructure;

/// <summary>Resident memory of a process from /proc (Linux).</summary>
internal static class ProcessMemory
{
    /// <summary>VmRSS of <paramref name="pid"/> in KiB, or null when the process is gone.</summary>
    public static long? ResidentKb(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
        }
        return null;
    }
}
