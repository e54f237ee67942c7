package io.doppel.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.assertj.core.api.Assertions.assertThat;

/** The status table with a volume group: long member names keep the columns aligned; the group is summed up. */
class StatusTableTest
{
    @Test
    void shouldAlignLongMemberNamesAndSumUpGroups() throws Exception
    {
        final JsonNode status = new ObjectMapper().readTree("""
            {"node": "alpha",
             "volumes": [
               {"name": "vm1", "group": "", "role": "primary", "peer": {"name": "beta", "connected": true},
                "replication": "streaming", "disk": "up-to-date", "size": 4096},
               {"name": "images.ubuntu-24.04-server.img", "group": "images", "role": "primary",
                "peer": {"name": "beta", "connected": true}, "replication": "streaming", "disk": "up-to-date",
                "size": 4096}],
             "groups": [
               {"name": "images", "role": "primary", "path": "/srv/images/*.img",
                "members": ["images.ubuntu-24.04-server.img"], "pending": ["new.img"],
                "missing": {"old.img": "deleted or renamed away"}, "skipped": {"dir.img": "not a regular file"},
                "error": ""}]}
            """);
        final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        StatusCommand.printTable(status, new PrintStream(bytes, true, StandardCharsets.UTF_8));
        final String[] lines = bytes.toString(StandardCharsets.UTF_8).split("\n");
        assertThat(lines[1]).startsWith("VOLUME");
        final int roleColumn = lines[1].indexOf("ROLE");
        assertThat(lines[2].indexOf("primary")).as("vm1's role under ROLE").isEqualTo(roleColumn);
        assertThat(lines[3].indexOf("primary")).as("the member's role under ROLE").isEqualTo(roleColumn);
        assertThat(lines[4]).isEqualTo("group images (primary, /srv/images/*.img): 1 member(s), 1 file(s) settling");
        assertThat(lines[5]).isEqualTo("  missing: old.img (deleted or renamed away; its standby copy is kept)");
        assertThat(lines[6]).isEqualTo("  skipped: dir.img: not a regular file");
    }
}
