package io.doppel.nbd;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.doppel.nbd.NbdTestSupport.NodePair;
import io.doppel.nbd.NbdTestSupport.ToolResult;
import io.doppel.replication.TestCluster;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static io.doppel.nbd.NbdTestSupport.run;
import static io.doppel.nbd.NbdTestSupport.toolExists;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * nbdinfo (libnbd) sees what doppel advertises: a writable primary export that can flush, FUA, trim and
 * zero; a read-only standby export that cannot trim or zero; the export list; and a base:allocation map
 * of a mixed image whose zero and data extents match the image file exactly, the same on both exports.
 */
class NbdInfoTest
{
    private static final long SIZE = 64L << 20;
    private static final ObjectMapper JSON = new ObjectMapper();
    /** nbdinfo --map lines: offset, length, type number, description. */
    private static final Pattern MAP_LINE = Pattern.compile("^\\s*(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(.+?)\\s*$");

    @TempDir
    Path dir;

    @Test
    void nbdinfoSeesFlagsListAndAllocationMap() throws Exception
    {
        Assumptions.assumeTrue(toolExists("nbdinfo"), "SKIPPED: nbdinfo not installed (apt-get install libnbd-bin)");
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 51);
        try (NodePair nodes = NodePair.start(cluster, false, false))
        {
            nodes.awaitInSync(30);

            final JsonNode primary = export(run(30, "nbdinfo", "--json", nodes.primaryUri()));
            assertThat(primary.path("is_read_only").asBoolean(true)).as(primary.toString()).isFalse();
            assertThat(primary.path("can_flush").asBoolean()).as(primary.toString()).isTrue();
            assertThat(primary.path("can_fua").asBoolean()).as(primary.toString()).isTrue();
            assertThat(primary.path("can_trim").asBoolean()).as(primary.toString()).isTrue();
            assertThat(primary.path("can_zero").asBoolean()).as(primary.toString()).isTrue();
            assertThat(primary.path("export-size").asLong()).as(primary.toString()).isEqualTo(SIZE);
            assertThat(primary.path("export-name").asText()).as(primary.toString()).isEqualTo("vm1");

            final JsonNode standby = export(run(30, "nbdinfo", "--json", nodes.standbyUri()));
            assertThat(standby.path("is_read_only").asBoolean(false)).as(standby.toString()).isTrue();
            assertThat(standby.path("can_trim").asBoolean(true)).as(standby.toString()).isFalse();
            assertThat(standby.path("can_zero").asBoolean(true)).as(standby.toString()).isFalse();
            assertThat(standby.path("export-size").asLong()).as(standby.toString()).isEqualTo(SIZE);

            final ToolResult list = run(30, "nbdinfo", "--list", "nbd://127.0.0.1:" + nodes.alphaNbdPort);
            assertThat(list.exit()).as(list.describe()).isZero();
            assertThat(list.output()).as(list.describe()).contains("export=\"vm1\"");

            final ToolResult map = run(30, "nbdinfo", "--map", nodes.primaryUri());
            assertThat(map.exit()).as(map.describe()).isZero();
            final List<long[]> extents = parseMap(map);
            assertThat(extents).as("a data extent; " + map.describe()).anyMatch(e -> e[2] == 0);
            assertThat(extents).as("a zero extent; " + map.describe()).anyMatch(e -> (e[2] & 2) != 0);
            assertMapMatchesFile(extents, cluster.alphaImage, map);

            final ToolResult standbyMap = run(30, "nbdinfo", "--map", nodes.standbyUri());
            assertThat(standbyMap.exit()).as(standbyMap.describe()).isZero();
            assertThat(standbyMap.output()).as("the standby's map equals the primary's; " + standbyMap.describe())
                .isEqualTo(map.output());
        }
    }

    private static JsonNode export(final ToolResult info) throws Exception
    {
        assertThat(info.exit()).as(info.describe()).isZero();
        final JsonNode root = JSON.readTree(info.output().substring(Math.max(0, info.output().indexOf('{'))));
        final JsonNode export = root.path("exports").path(0);
        assertThat(export.isObject()).as("an export in " + info.describe()).isTrue();
        return export;
    }

    /** Extents as {offset, length, type}; they must tile the export from 0 to its end. */
    private static List<long[]> parseMap(final ToolResult map)
    {
        final List<long[]> extents = new ArrayList<>();
        long next = 0;
        for (final String line : map.output().split("\n"))
        {
            if (line.isBlank())
            {
                continue;
            }
            final Matcher m = MAP_LINE.matcher(line);
            assertThat(m.matches()).as("map line \"" + line + "\"; " + map.describe()).isTrue();
            final long offset = Long.parseLong(m.group(1));
            final long length = Long.parseLong(m.group(2));
            final long type = Long.parseLong(m.group(3));
            final String description = m.group(4);
            assertThat(offset).as("extents are contiguous; " + map.describe()).isEqualTo(next);
            if (type == 0)
            {
                assertThat(description).as(line).isEqualTo("data");
            }
            else
            {
                assertThat(type & 2).as("type of \"" + line + "\": data or zero; " + map.describe()).isEqualTo(2);
                assertThat(description).as(line).contains("zero");
            }
            extents.add(new long[] {offset, length, type});
            next = offset + length;
        }
        assertThat(next).as("the map covers the export; " + map.describe()).isEqualTo(SIZE);
        return extents;
    }

    /** Zero extents read as zeros in the file; every 4 KiB block of a data extent holds a non-zero byte. */
    private static void assertMapMatchesFile(final List<long[]> extents, final Path image, final ToolResult map)
        throws Exception
    {
        final byte[] bytes = Files.readAllBytes(image);
        for (final long[] e : extents)
        {
            final int from = (int)e[0];
            final int to = (int)(e[0] + e[1]);
            if ((e[2] & 2) != 0)
            {
                for (int i = from; i < to; i++)
                {
                    if (bytes[i] != 0)
                    {
                        throw new AssertionError("extent " + from + "+" + e[1] + " is mapped zero but byte " + i
                            + " is 0x" + Integer.toHexString(bytes[i] & 0xff) + "; " + map.describe());
                    }
                }
            }
            else
            {
                for (int block = from; block < to; block += 4096)
                {
                    boolean nonZero = false;
                    for (int i = block; i < Math.min(to, block + 4096) && !nonZero; i++)
                    {
                        nonZero = bytes[i] != 0;
                    }
                    if (!nonZero)
                    {
                        throw new AssertionError("extent " + from + "+" + e[1] + " is mapped data but the 4 KiB block"
                            + " at " + block + " is all zeros; " + map.describe());
                    }
                }
            }
        }
    }
}
