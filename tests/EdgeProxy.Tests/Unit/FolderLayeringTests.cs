using System.Text;
using System.Text.RegularExpressions;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Unit;

/// <summary>
/// The folders of src/EdgeProxy are layers (docs/ARCHITECTURE.md, "Layers"): a folder uses only the
/// folders below it, so no two folders depend on each other. Read from the source text: a file's
/// folder must be its namespace, and it depends on another folder through `EdgeProxy.X` anywhere in
/// its code (usings, aliases, fully-qualified names) or a partly qualified `X.Type` of a type that
/// folder declares. Comments and string literals do not count.
/// </summary>
public sealed partial class FolderLayeringTests
{
    /// <summary>Bottom to top.</summary>
    private static readonly string[] Layers =
        ["Transport", "Configuration", "Observability", "Health", "Balancing", "Routing", "Auth", "Forwarding", "Dashboard", "Hosting"];

    private static readonly string Source = Path.Combine(Repo.Root, "src", "EdgeProxy");

    [GeneratedRegex("""//[^\n]*|/\*.*?\*/|\"\"\"(?s:.*?)\"\"\"|@"(?:[^"]|"")*"|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])+'""", RegexOptions.Singleline)]
    private static partial Regex CommentOrLiteral();

    [GeneratedRegex(@"\b(?:class|struct|interface|enum|record)\s+([A-Z]\w*)|\bdelegate\s+[\w<>\[\]?,\s]+?\s([A-Z]\w*)\s*[<(]")]
    private static partial Regex TypeDeclaration();

    [GeneratedRegex(@"^\s*namespace\s+([\w.]+)", RegexOptions.Multiline)]
    private static partial Regex Namespace();

    [GeneratedRegex(@"\bEdgeProxy\.(\w+)")]
    private static partial Regex Qualified();

    [GeneratedRegex(@"(?<![\w.])([A-Z]\w*)\.([A-Z]\w*)")]
    private static partial Regex PartlyQualified();

    private sealed record SourceFile(string Folder, string Name, string Code);

    private static List<SourceFile> ReadSource()
        => Directory.EnumerateFiles(Source, "*.cs", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(Source, path).Split(Path.DirectorySeparatorChar))
            .Where(parts => parts.Length > 1 && parts[0] is not ("bin" or "obj"))
            .Select(parts => new SourceFile(parts[0], string.Join('/', parts), CommentOrLiteral().Replace(File.ReadAllText(Path.Combine(Source, Path.Combine(parts))), " ")))
            .ToList();

    /// <summary>Every (from folder, to folder) edge with the files and names that make it.</summary>
    private static Dictionary<(string From, string To), SortedSet<string>> Edges(List<SourceFile> files)
    {
        var declared = files.GroupBy(f => f.Folder).ToDictionary(
            g => g.Key,
            g => g.SelectMany(f => TypeDeclaration().Matches(f.Code).Select(m => m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value)).ToHashSet(StringComparer.Ordinal));
        var edges = new Dictionary<(string, string), SortedSet<string>>();
        void Add(SourceFile file, string to, string what)
        {
            if (to != file.Folder && declared.ContainsKey(to))
            {
                if (!edges.TryGetValue((file.Folder, to), out var why))
                {
                    edges[(file.Folder, to)] = why = new SortedSet<string>(StringComparer.Ordinal);
                }
                why.Add($"{file.Name}: {what}");
            }
        }
        foreach (var file in files)
        {
            foreach (Match m in Qualified().Matches(file.Code))
            {
                Add(file, m.Groups[1].Value, m.Value);
            }
            foreach (Match m in PartlyQualified().Matches(file.Code))
            {
                if (declared.TryGetValue(m.Groups[1].Value, out var types) && types.Contains(m.Groups[2].Value))
                {
                    Add(file, m.Groups[1].Value, m.Value);
                }
            }
        }
        return edges;
    }

    [Fact]
    public void Every_folder_is_a_layer_and_every_file_is_in_its_folders_namespace()
    {
        var files = ReadSource();
        Assert.Equal(Layers.Order(StringComparer.Ordinal), files.Select(f => f.Folder).Distinct().Order(StringComparer.Ordinal));
        var misplaced = files
            .Where(f => Namespace().Match(f.Code) is not { Success: true } ns
                || (ns.Groups[1].Value != "EdgeProxy." + f.Folder && !ns.Groups[1].Value.StartsWith("EdgeProxy." + f.Folder + ".", StringComparison.Ordinal)))
            .Select(f => f.Name)
            .ToList();
        Assert.True(misplaced.Count == 0, "files whose namespace is not their folder's: " + string.Join(", ", misplaced));
    }

    [Fact]
    public void No_folder_uses_a_folder_above_it()
    {
        var upward = Edges(ReadSource())
            .Where(e => Array.IndexOf(Layers, e.Key.From) < Array.IndexOf(Layers, e.Key.To))
            .OrderBy(e => e.Key.From, StringComparer.Ordinal).ThenBy(e => e.Key.To, StringComparer.Ordinal)
            .Select(e => $"{e.Key.From} -> {e.Key.To} ({string.Join("; ", e.Value)})")
            .ToList();
        Assert.True(upward.Count == 0, $"layers, bottom to top: {string.Join(", ", Layers)}\nupward uses:\n" + string.Join("\n", upward));
    }

    [Fact]
    public void The_folder_graph_has_no_cycle()
    {
        var edges = Edges(ReadSource());
        var next = edges.Keys.ToLookup(e => e.From, e => e.To);
        var state = new Dictionary<string, int>(StringComparer.Ordinal);   // 1 on the path, 2 done
        var path = new List<string>();
        string? Visit(string folder)
        {
            state[folder] = 1;
            path.Add(folder);
            foreach (var to in next[folder].Order(StringComparer.Ordinal))
            {
                if (state.GetValueOrDefault(to) == 1)
                {
                    var cycle = path.Skip(path.IndexOf(to)).Append(to).ToList();
                    var text = new StringBuilder(string.Join(" -> ", cycle));
                    for (var i = 0; i + 1 < cycle.Count; i++)
                    {
                        text.Append($"\n  {cycle[i]} -> {cycle[i + 1]}: {string.Join("; ", edges[(cycle[i], cycle[i + 1])])}");
                    }
                    return text.ToString();
                }
                if (state.GetValueOrDefault(to) == 0 && Visit(to) is { } found)
                {
                    return found;
                }
            }
            path.RemoveAt(path.Count - 1);
            state[folder] = 2;
            return null;
        }
        foreach (var folder in Layers)
        {
            if (state.GetValueOrDefault(folder) == 0 && Visit(folder) is { } cycle)
            {
                Assert.Fail("folder cycle: " + cycle);
            }
        }
    }
}
