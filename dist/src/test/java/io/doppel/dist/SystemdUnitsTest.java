package io.doppel.dist;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@code systemd-analyze verify} on every unit in systemd/ (doppel.service and any template such as
 * doppel@.service, checked as an instance): exit 0 and not one warning about the unit (unknown keys or
 * sections, bad values, a missing command).
 *
 * <p>verify insists that ExecStart's program exists. /usr/bin/doppel is there only after an install, so
 * the unit is copied into a temporary directory with the commands of its Exec*= lines pointed at the
 * archive's real launcher (dist/src/dist/bin/doppel, which the installed /usr/bin/doppel links to); every
 * other line is kept as it is. Skipped, saying so, where systemd-analyze is not installed.
 */
class SystemdUnitsTest
{
    private static final String INSTALLED_LAUNCHER = "/usr/bin/doppel";

    @TempDir
    Path dir;

    private Path systemdDir;
    private Path launcher;

    @BeforeEach
    void needsSystemdAnalyze()
    {
        final String skipped = "SKIPPED: systemd-analyze not installed, the units were NOT verified (apt-get install systemd)";
        if (!Tool.exists("systemd-analyze"))
        {
            System.err.println("SystemdUnitsTest: " + skipped); // in the build log, not only in the report
        }
        Assumptions.assumeTrue(Tool.exists("systemd-analyze"), skipped);
        systemdDir = Path.of(System.getProperty("doppel.systemd.dir", "../systemd")).toAbsolutePath().normalize();
        launcher = Path.of(System.getProperty("doppel.launcher", "src/dist/bin/doppel")).toAbsolutePath().normalize();
        assertThat(launcher).as("the archive's launcher").isExecutable();
    }

    @Test
    void everyUnitVerifiesWithoutWarnings() throws IOException
    {
        final List<Path> units;
        try (Stream<Path> files = Files.list(systemdDir))
        {
            units = files.filter(f -> f.getFileName().toString().endsWith(".service")).sorted().collect(Collectors.toList());
        }
        assertThat(units).as("units in " + systemdDir).extracting(u -> u.getFileName().toString()).contains("doppel.service");
        for (final Path unit : units)
        {
            final Path copy = copyWithLauncher(unit);
            final Tool.Result r = verify(copy);
            assertThat(r.exit()).as(r.describe()).isZero();
            assertThat(warningsAbout(r.output(), copy)).as("systemd-analyze warnings about " + unit + "\n" + r.describe())
                .isEmpty();
        }
    }

    /** The check above would notice: on this systemd, an unknown key is a warning with exit 0, not an error. */
    @Test
    void anUnknownKeyIsCaught() throws IOException
    {
        final Path copy = copyWithLauncher(systemdDir.resolve("doppel.service"));
        Files.writeString(copy, Files.readString(copy).replace("\n[Service]\n", "\n[Service]\nProtectEverything=yes\n"));
        final Tool.Result r = verify(copy);
        assertThat(warningsAbout(r.output(), copy)).as(r.describe()).anySatisfy(line ->
            assertThat(line).contains("Unknown key").contains("ProtectEverything"));
    }

    /** The unit as systemd/ has it, into the temp dir, with /usr/bin/doppel in Exec*= lines replaced by the launcher. */
    private Path copyWithLauncher(final Path unit) throws IOException
    {
        final List<String> lines = Files.readAllLines(unit);
        final List<String> out = new ArrayList<>(lines.size());
        int rewritten = 0;
        for (final String line : lines)
        {
            if (line.startsWith("Exec") && line.contains("=" + INSTALLED_LAUNCHER + " "))
            {
                out.add(line.replace("=" + INSTALLED_LAUNCHER + " ", "=" + launcher + " "));
                rewritten++;
            }
            else
            {
                out.add(line);
            }
        }
        assertThat(rewritten).as("Exec*= lines of " + unit + " that run " + INSTALLED_LAUNCHER).isPositive();
        final Path copy = dir.resolve(unit.getFileName());
        Files.write(copy, out);
        return copy;
    }

    /** verify on the unit file, or on an instance of a template (doppel@.service as doppel@example.service). */
    private static Tool.Result verify(final Path unit)
    {
        final String name = unit.getFileName().toString();
        final Path target = name.contains("@.") ? unit.resolveSibling(name.replace("@.", "@example.")) : unit;
        return Tool.run(60, java.util.Map.of("SYSTEMD_COLORS", "0", "SYSTEMD_PAGER", ""),
            "systemd-analyze", "verify", "--man=no", target.toString());
    }

    /** The lines of verify's output that are about this unit (its path or its name). */
    private static List<String> warningsAbout(final String output, final Path unit)
    {
        final String name = unit.getFileName().toString();
        final String stem = name.substring(0, name.lastIndexOf('.')).replace("@", "");
        return output.lines().filter(l -> l.contains(unit.getParent().toString()) || l.contains(stem)).collect(Collectors.toList());
    }
}
