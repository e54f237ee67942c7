package io.doppel.daemon;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The answer to a live reload: either every change in {@code changes} was applied, or none was and
 * {@code refused} says why, one line per change that could not apply live.
 */
public record ReloadResult(boolean accepted, List<String> changes, List<String> refused)
{
    /** The JSON answer of {@code POST /reload}. */
    public Map<String, Object> toMap()
    {
        final Map<String, Object> m = new LinkedHashMap<>();
        m.put("accepted", accepted);
        m.put("changes", changes);
        m.put("refused", refused);
        m.put("message", accepted ? (changes.isEmpty() ? "reloaded: no changes" : "reloaded: " + String.join("; ", changes))
            : "reload refused, still running on the old config: " + String.join("; ", refused));
        return m;
    }

    static ReloadResult accepted(final List<String> changes)
    {
        return new ReloadResult(true, List.copyOf(changes), List.of());
    }

    static ReloadResult refused(final List<String> reasons)
    {
        return new ReloadResult(false, List.of(), List.copyOf(reasons));
    }
}
