package main

// runnel status: the site part of /api/status ("replication", see
// replicate.Status) as tables: the members, this box's partitions with
// their copies, in-sync sets and lag, and the copies held here.

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/runnel/runnel/replicate"
)

// printSite prints the replication section of a status document; false
// when v is not one (then the generic printer shows it).
func printSite(w io.Writer, v any, now time.Time) bool {
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	var st replicate.Status
	if err := json.Unmarshal(b, &st); err != nil || st.NodeID == "" {
		return false
	}
	fmt.Fprintf(w, "\nSite (this box: %s, broker id %d", st.NodeID, st.BrokerID)
	if st.Restoring {
		fmt.Fprint(w, "; RESTORING from the site's copies, appends wait")
	}
	fmt.Fprintln(w, "):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PEER\tSTATE\tKAFKA\tGOSSIP\tLAST CONTACT")
	for _, p := range st.Peers {
		name, contact := p.NodeID, ago(now, p.LastContact)
		if p.Self {
			name += " (this box)"
		}
		if p.State == "alive" {
			contact = "now"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", name, p.State, dash(p.KafkaAddr), dash(p.GossipAddr), contact)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nThis box's partitions with copies (%d):\n", len(st.Partitions))
	if len(st.Partitions) > 0 {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  PARTITION\tEND\tACKED\tRF\tMIN ISR\tIN SYNC\tMIRROR\tMIRROR END\tLAG\tLAG (s)\tSTATE")
		for _, p := range st.Partitions {
			acked := "-"
			if p.MinInsyncReplicas > 1 && p.Acked >= 0 {
				acked = fmt.Sprint(p.Acked)
			}
			lead := fmt.Sprintf("  %s/%d\t%d\t%s\t%d\t%d\t%s", p.Topic, p.Partition, p.End, acked, p.ReplicationFactor, p.MinInsyncReplicas, strings.Join(p.InSync, ","))
			if len(p.Mirrors) == 0 {
				fmt.Fprintf(tw, "%s\t-\t-\t-\t-\tno peer to copy to\n", lead)
			}
			for i, m := range p.Mirrors {
				if i > 0 {
					lead = "\t\t\t\t\t"
				}
				state := "in sync"
				switch {
				case m.Stalled:
					state = "STALLED"
				case !m.InSync:
					state = "catching up"
				}
				end := "-"
				if m.End >= 0 {
					end = fmt.Sprint(m.End)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1f\t%s\n", lead, m.NodeID, end, m.LagRecords, m.LagSeconds, state)
			}
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\nCopies held here (%d):\n", len(st.Copies))
	if len(st.Copies) > 0 {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  COPY\tORIGIN\tEND\tORIGIN END\tLAG\tLAG (s)\tSTATE")
		for _, c := range st.Copies {
			state := "ok"
			switch {
			case c.Diverged != "":
				state = "DIVERGED: " + c.Diverged
			case c.Stalled && c.Error != "":
				state = "STALLED: " + c.Error
			case c.Stalled:
				state = "STALLED"
			case c.LagRecords > 0:
				state = "catching up"
			}
			fmt.Fprintf(tw, "  %s/%d\t%s\t%d\t%d\t%d\t%.1f\t%s\n", c.Topic, c.Partition, c.Origin, c.End, c.OriginEnd, c.LagRecords, c.LagSeconds, state)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\n  acks=all refused (not enough replicas): %d; copies cut back to their origin: %d (%d records); records taken back at start: %d; divergences: %d\n",
		st.NotEnoughReplicas, st.Truncations, st.TruncatedRecords, st.RestoredRecords, st.Divergences)
	return true
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago renders how long before now t was ("-" for the zero time).
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}
