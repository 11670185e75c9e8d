//lint:file-ignore SA1019 Package dashboard builds the classic JSON model, which every Grafana version provisions from files; the dashboardv2 the SDK prefers needs Grafana 12 and its v2 dashboard API.

package main

import (
	"encoding/json"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/logs"
	"github.com/grafana/grafana-foundation-sdk/go/loki"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// The uids provisioning/datasources/camera.yml gives the datasources. The
// datasource variables default to them, so that a provisioned Grafana shows
// data at once; elsewhere Grafana falls back to its default datasource.
const (
	prometheusUID = "prometheus"
	lokiUID       = "loki"
)

// The label matchers every query carries so that the variables apply to it.
// The exporter's own series (detector, collectors, build, reloads) have no
// camera label, and a camera matcher would drop them once cameras are
// picked, so they take boxMatchers only.
const (
	boxMatchers    = `site=~"$site", box=~"$box"`
	cameraMatchers = boxMatchers + `, camera=~"$camera"`
)

var (
	prometheusDatasource = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}
	lokiDatasource       = common.DataSourceRef{Type: cog.ToPtr("loki"), Uid: cog.ToPtr("${loki}")}
)

// perCamera and perBox select a metric for the chosen cameras or boxes.
func perCamera(metric string) string { return metric + "{" + cameraMatchers + "}" }
func perBox(metric string) string    { return metric + "{" + boxMatchers + "}" }

// frozenExpr is 1 for a camera whose picture is frozen as the CameraFrozen
// alert sees it, else 0: identical frames of a picture that is not flat.
var frozenExpr = perCamera("camera_frame_frozen") + " * (" + perCamera("camera_frame_contrast_ratio") + " >= bool 0.02)"

// movedExpr is 1 for a camera whose view moved as the CameraMoved alert
// sees it, before its 5 minutes, else 0: shifted by more than 5% of the
// picture on either axis, or zoomed by more than 10%.
var movedExpr = "(max without (axis) (abs(" + perCamera("camera_view_shift_ratio") + ")) > bool 0.05) + (abs(" + perCamera("camera_view_scale_ratio") + " - 1) > bool 0.1) > bool 0"

// stateExpr is 2 for a camera that is up, 1 for a stalled stream (session up,
// no frames) and 0 for one without a session: camera_up implies
// camera_session_up.
var stateExpr = perCamera("camera_up") + " + " + perCamera("camera_session_up")

// unwatchedReasons says what camera:camera_unwatched_by_reason:bool
// counts, for the descriptions of the panels that read it.
const unwatchedReasons = "It counts the minutes in which the camera's detector could not see the scene, whatever the reason: the camera down (no RTSP session), its stream stalled (no frames), its picture frozen, obstructed, moved away from its reference view or too dark, or its analysis failing."

// unwatchedPerDay is the minutes of each day in which metric, a 0/1 series
// of the recording rules, was 1, for the chosen cameras; above, for those
// where it was.
func unwatchedPerDay(metric, above string) string {
	return "avg_over_time(" + perCamera(metric) + "[1d]) * 1440" + above
}

// unwatchedDays draws a day's unwatched minutes as one bar a day over the
// last week, whatever the dashboard's time range: each bar counts the day
// up to its time. The bars stack, as each camera's add up.
func unwatchedDays(title, description string, q query) *timeseries.PanelBuilder {
	return timeSeries(title, description, "m", q).
		Interval("1d").
		TimeFrom("7d").
		DrawStyle(common.GraphDrawStyleBars).
		FillOpacity(80).
		Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).
		Min(0)
}

// dashboardJSON is the content of dashboards/camera.json.
func dashboardJSON() ([]byte, error) {
	d, err := cameraDashboard().Build()
	if err != nil {
		return nil, err
	}
	layOut(&d)
	// The SDK puts the annotation toggles in the controls menu of recent
	// Grafana versions; without a placement they show on the dashboard.
	for i := range d.Annotations.List {
		d.Annotations.List[i].Placement = nil
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// layOut gives every row and panel a unique id in layout order, and moves
// up what follows a collapsed row. The SDK leaves ids unset, and Grafana
// would number panels anew on every load, which breaks links to them; it
// also lays out the panels of a collapsed row as if the row were open.
func layOut(d *dashboard.Dashboard) {
	var id, hidden uint32
	next := func() uint32 { id++; return id }
	for _, p := range d.Panels {
		if p.Panel != nil {
			p.Panel.Id = cog.ToPtr(next())
			p.Panel.GridPos.Y -= hidden
			continue
		}
		row := p.RowPanel
		row.Id = next()
		row.GridPos.Y -= hidden
		bottom := row.GridPos.Y + 1
		for i := range row.Panels {
			inner := &row.Panels[i]
			inner.Id = cog.ToPtr(next())
			inner.GridPos.Y -= hidden
			bottom = max(bottom, inner.GridPos.Y+inner.GridPos.H)
		}
		if row.Collapsed {
			hidden += bottom - (row.GridPos.Y + 1)
		}
	}
}

func cameraDashboard() *dashboard.DashboardBuilder {
	b := dashboard.NewDashboardBuilder("Cameras").
		Uid("camera-exporter").
		Description("RTSP cameras watched by camera_exporter: stream health, picture statistics and object detection.").
		Tags([]string{"camera_exporter", "cameras"}).
		Time("now-6h", "now").
		Refresh("30s").
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(datasourceVariable("datasource", "Prometheus", "prometheus", prometheusUID)).
		WithVariable(datasourceVariable("loki", "Loki", "loki", lokiUID)).
		WithVariable(labelVariable("site", "Site", "camera_up")).
		WithVariable(labelVariable("box", "Box", `camera_up{site=~"$site"}`)).
		WithVariable(labelVariable("camera", "Camera", perBox("camera_up"))).
		WithVariable(exporterURLVariable()).
		Annotation(dashboard.NewAnnotationQueryBuilder().
			Name("Alerts").
			Datasource(prometheusDatasource).
			Enable(true).
			IconColor("red").
			// The empty alternative keeps the exporter's own alerts, which
			// have no camera label, when cameras are picked.
			Expr(`ALERTS{alertstate="firing", job="camera", ` + boxMatchers + `, camera=~"$camera|"}`).
			TitleFormat("{{alertname}}").
			TextFormat("{{box}} {{camera}}").
			TagKeys("alertname,severity")).
		Annotation(dashboard.NewAnnotationQueryBuilder().
			Name("Reloads").
			Datasource(prometheusDatasource).
			Enable(true).
			IconColor("blue").
			// Grafana places the event at the value, in milliseconds, so
			// each reload is one mark at its own time whatever the step.
			Expr(perBox("camera_exporter_config_last_reload_success_timestamp_seconds") + " * 1000").
			UseValueForTime(true).
			TitleFormat("Configuration loaded").
			TextFormat("{{box}}"))

	b.WithRow(dashboard.NewRowBuilder("Overview"))
	for _, p := range overviewPanels() {
		b.WithPanel(p)
	}
	// Collapsed rows hold their panels and query only once opened.
	b.WithRow(withPanels(dashboard.NewRowBuilder("Logs").Collapsed(true), logsPanel()))
	b.WithRow(withPanels(dashboard.NewRowBuilder("Exporter").Collapsed(true), exporterPanels()...))
	// Last, as Grafana repeats the panels that follow an expanded row up to
	// the next one.
	b.WithRow(dashboard.NewRowBuilder("Camera $camera").Repeat("camera"))
	for _, p := range cameraPanels() {
		b.WithPanel(p)
	}
	return b
}

// exporterURLVariable is the --web.external-url of the selected box's
// exporter, for the links to its camera pages; hidden, and empty when the
// exporter has none.
func exporterURLVariable() *dashboard.QueryVariableBuilder {
	query := `label_values(camera_exporter_external_url_info{site=~"$site", box=~"$box"}, url)`
	return dashboard.NewQueryVariableBuilder("exporter_url").
		Label("Exporter URL").
		Datasource(prometheusDatasource).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
		Definition(query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Hide(dashboard.VariableHideHideVariable)
}

// cameraPageLink opens the camera's page on its exporter: its picture,
// state and latest analyses. camera is the panel's camera variable, or,
// for a data link, the clicked series' label.
func cameraPageLink(camera string) []cog.Builder[dashboard.DashboardLink] {
	return []cog.Builder[dashboard.DashboardLink]{
		dashboard.NewDashboardLinkBuilder("Camera page: what " + camera + " sees").
			Type(dashboard.DashboardLinkTypeLink).
			Url("${exporter_url}/cameras/" + camera).
			Tooltip("The camera's page on its exporter (needs --web.external-url)").
			TargetBlank(true),
	}
}

func withPanels(row *dashboard.RowBuilder, panels ...cog.Builder[dashboard.Panel]) *dashboard.RowBuilder {
	for _, p := range panels {
		row.WithPanel(p)
	}
	return row
}

func datasourceVariable(name, label, pluginType, uid string) *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder(name).
		Label(label).
		Type(pluginType).
		Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{String: cog.ToPtr(label)},
			Value: dashboard.StringOrArrayOfString{String: cog.ToPtr(uid)},
		})
}

// labelVariable offers the values of label name among the series selector
// selects. All is the regex .*, not the list of values, so that queries stay
// short with many cameras and Loki keeps the lines without a camera key.
func labelVariable(name, label, selector string) *dashboard.QueryVariableBuilder {
	query := "label_values(" + selector + ", " + name + ")"
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(prometheusDatasource).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
		Definition(query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalCaseInsensitiveAsc).
		Multi(true).
		IncludeAll(true).
		AllValue(".*").
		Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{String: cog.ToPtr("All")},
			Value: dashboard.StringOrArrayOfString{String: cog.ToPtr("$__all")},
		})
}

// query is a Prometheus range query and its legend.
type query struct{ expr, legend string }

// promTargets letters the queries A, B, ... in order.
func promTargets(qs ...query) []cog.Builder[variants.Dataquery] {
	targets := make([]cog.Builder[variants.Dataquery], 0, len(qs))
	for i, q := range qs {
		targets = append(targets, prometheus.NewDataqueryBuilder().
			RefId(string(rune('A'+i))).
			Datasource(prometheusDatasource).
			Expr(q.expr).
			LegendFormat(q.legend).
			Range())
	}
	return targets
}

// rate is the per-second rate of a counter of the chosen cameras.
func rate(metric string) string {
	return "rate(" + perCamera(metric) + "[$__rate_interval])"
}

// increase is what a counter of the chosen cameras gained in each bar of a
// panel with minInterval.
func increase(metric string) string {
	return "increase(" + perCamera(metric) + "[$__interval])"
}

// minInterval keeps $__interval at four 15 s scrapes or more, so that the
// increase in each bar rests on several samples.
const minInterval = "1m"

func timeSeries(title, description, unit string, qs ...query) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(prometheusDatasource).
		Targets(promTargets(qs...)).
		Unit(unit).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
}

// ratioSeries draws a ratio from 0 to 1.
func ratioSeries(title, description string, qs ...query) *timeseries.PanelBuilder {
	return timeSeries(title, description, "percentunit", qs...).Min(0).Max(1)
}

// countBars draws what a counter gained in each time slot.
func countBars(title, description, metric, legend string) *timeseries.PanelBuilder {
	return timeSeries(title, description, "short", query{increase(metric), legend}).
		Interval(minInterval).
		DrawStyle(common.GraphDrawStyleBars).
		FillOpacity(80)
}

// statPanel shows the latest value of each query; several show side by side,
// named by their legends.
func statPanel(title, description string, qs ...query) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(prometheusDatasource).
		Targets(promTargets(qs...)).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		GraphMode(common.BigValueGraphModeNone).
		Orientation(common.VizOrientationAuto)
}

func stateTimeline(title, description string, mappings []dashboard.ValueMapping, qs ...query) *statetimeline.PanelBuilder {
	return statetimeline.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(prometheusDatasource).
		Targets(promTargets(qs...)).
		Unit("none").
		Mappings(mappings).
		MergeValues(true).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeSingle).Sort(common.SortOrderNone))
}

// infoTable lists the labels of an info metric, one row per series, columns
// first in order; the other labels follow.
func infoTable(title, description, metric string, columns ...string) *table.PanelBuilder {
	order := map[string]int{}
	for i, c := range columns {
		order[c] = i
	}
	return table.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(prometheusDatasource).
		WithTarget(prometheus.NewDataqueryBuilder().
			RefId("A").
			Datasource(prometheusDatasource).
			Expr(metric).
			Format(prometheus.PromQueryFormatTable).
			Instant()).
		WithTransformation(dashboard.DataTransformerConfig{
			Id: "organize",
			Options: map[string]any{
				"excludeByName": map[string]bool{"Time": true, "Value": true, "__name__": true, "job": true, "instance": true},
				"indexByName":   order,
			},
		}).
		// The SDK's default footer has a null reducer, which its own strict
		// decoder rejects.
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{}))
}

func heatmapPanel(title, description string, yAxis *heatmap.YAxisConfigBuilder) *heatmap.PanelBuilder {
	return heatmap.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(prometheusDatasource).
		YAxis(yAxis).
		CellValues(heatmap.NewCellValuesBuilder().Unit("short")).
		Tooltip(heatmap.NewHeatmapTooltipBuilder().Mode(common.TooltipDisplayModeSingle).YHistogram(true))
}

// bucketHeatmap shows how the observations of a histogram of the chosen
// cameras spread over its buckets in each time slot.
func bucketHeatmap(title, description, metric, unit string) *heatmap.PanelBuilder {
	return heatmapPanel(title, description, heatmap.NewYAxisConfigBuilder().Unit(unit)).
		Interval(minInterval).
		WithTarget(prometheus.NewDataqueryBuilder().
			RefId("A").
			Datasource(prometheusDatasource).
			Expr("sum by (le) (" + increase(metric+"_bucket") + ")").
			LegendFormat("{{le}}").
			Format(prometheus.PromQueryFormatHeatmap).
			Range()).
		Calculate(false)
}

// thresholds starts with color base and changes at each step.
func thresholds(base string, steps ...dashboard.Threshold) *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().
		Mode(dashboard.ThresholdsModeAbsolute).
		Steps(append([]dashboard.Threshold{{Color: base}}, steps...))
}

func at(value float64, color string) dashboard.Threshold {
	return dashboard.Threshold{Value: &value, Color: color}
}

// driftThresholds are the usual bounds of a population stability index:
// below 0.1 no drift, up to 0.25 moderate, above significant.
func driftThresholds() *dashboard.ThresholdsConfigBuilder {
	return thresholds("green", at(0.1, "orange"), at(0.25, "red"))
}

// dashedThresholds draws the thresholds of a time series as dashed lines.
func dashedThresholds() *common.GraphThresholdsStyleConfigBuilder {
	return common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeDashed)
}

// valueTexts names values, each with a color: value, text, color, value, ...
func valueTexts(texts ...[3]string) []dashboard.ValueMapping {
	options := map[string]dashboard.ValueMappingResult{}
	for i, t := range texts {
		options[t[0]] = dashboard.ValueMappingResult{Text: cog.ToPtr(t[1]), Color: cog.ToPtr(t[2]), Index: cog.ToPtr(int32(i))}
	}
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: options}}}
}

// property is a field override property. Its value goes through JSON as
// the SDK decodes it, into maps, whose keys encode sorted: a struct's fields
// would keep their order, and the dashboard would change when decoded and
// encoded again.
func property(id string, value any) dashboard.DynamicConfigValue {
	b, err := json.Marshal(value)
	if err != nil {
		panic(err) // the values of this file are all encodable
	}
	var decoded any
	if err := json.Unmarshal(b, &decoded); err != nil {
		panic(err)
	}
	return dashboard.DynamicConfigValue{Id: id, Value: decoded}
}

// fixedColor draws a series in one color.
func fixedColor(color string) dashboard.DynamicConfigValue {
	return property("color", map[string]string{"mode": "fixed", "fixedColor": color})
}

// cameraStates names the values of stateExpr.
func cameraStates() []dashboard.ValueMapping {
	return valueTexts([3]string{"2", "Up", "green"}, [3]string{"1", "Stalled", "orange"}, [3]string{"0", "Down", "red"})
}

// frozenStates names the values of frozenExpr and camera_frame_frozen.
func frozenStates() []dashboard.ValueMapping {
	return valueTexts([3]string{"1", "Frozen", "red"}, [3]string{"0", "Live", "green"})
}

// successes names the values of a success gauge.
func successes(ok, failed string) []dashboard.ValueMapping {
	return valueTexts([3]string{"1", ok, "green"}, [3]string{"0", failed, "red"})
}

func overviewPanels() []cog.Builder[dashboard.Panel] {
	return []cog.Builder[dashboard.Panel]{
		statPanel("Cameras", "Configured cameras.", query{"count(" + perCamera("camera_up") + ")", ""}).
			Unit("none").ColorMode(common.BigValueColorModeNone).
			Span(4).Height(4),
		statPanel("Up", "Cameras with an RTSP session that sent a frame within their timeout.", query{"sum(" + perCamera("camera_up") + ")", ""}).
			Unit("none").ColorMode(common.BigValueColorModeValue).Thresholds(thresholds("green")).
			Span(5).Height(4),
		statPanel("Stalled", "Cameras that keep their RTSP session up but send no video.",
			query{"sum(" + perCamera("camera_session_up") + " > bool " + perCamera("camera_up") + ")", ""}).
			Unit("none").ColorMode(common.BigValueColorModeValue).Thresholds(thresholds("green", at(1, "orange"))).NoValue("0").
			Span(5).Height(4),
		statPanel("Down", "Cameras without an RTSP session.", query{"sum(1 - " + perCamera("camera_session_up") + ")", ""}).
			Unit("none").ColorMode(common.BigValueColorModeValue).Thresholds(thresholds("green", at(1, "red"))).NoValue("0").
			Span(5).Height(4),
		statPanel("Exporters down", "Exporters Prometheus fails to scrape: their cameras are missing from every other panel.",
			query{`sum(1 - up{job="camera", ` + boxMatchers + `})`, ""}).
			Unit("none").ColorMode(common.BigValueColorModeValue).Thresholds(thresholds("green", at(1, "red"))).NoValue("0").
			Span(5).Height(4),
		statPanel("Frozen", "Cameras whose stream keeps delivering the same picture: a stuck encoder. Flat pictures (contrast below 0.02), which repeat by nature, do not count.",
			query{"sum(" + frozenExpr + ")", ""}).
			Unit("none").ColorMode(common.BigValueColorModeValue).Thresholds(thresholds("green", at(1, "red"))).NoValue("0").
			Span(6).Height(4),
		statPanel("Drifted", "Cameras whose combined drift score is above 0.25: their pictures and detections of the last hour differ significantly from their reference. Cameras without a reference have no score.",
			query{"sum(" + perCamera("camera_drift_combined_score") + " > bool 0.25)", ""}).
			Unit("none").ColorMode(common.BigValueColorModeValue).Thresholds(thresholds("green", at(1, "orange"))).NoValue("0").
			Span(6).Height(4),
		statPanel("Moved", "Cameras whose view is now more than 5% of the picture away from their reference view, or zoomed by more than 10%: knocked, turned or re-aimed. CameraMoved fires after 5 minutes.",
			query{"sum(" + movedExpr + ")", ""}).
			Unit("none").ColorMode(common.BigValueColorModeValue).Thresholds(thresholds("green", at(1, "orange"))).NoValue("0").
			Span(6).Height(4),
		statPanel("Obstructed", "Cameras that now find less than 65% of their reference view: a covered or dirty lens, an obstacle, another scene. CameraObstructed fires after 15 minutes.",
			query{"sum(" + perCamera("camera_view_match_ratio") + " < bool 0.65)", ""}).
			Unit("none").ColorMode(common.BigValueColorModeValue).Thresholds(thresholds("green", at(1, "orange"))).NoValue("0").
			Span(6).Height(4),
		stateTimeline("Camera state",
			"Up: frames arrive. Stalled: the RTSP session is up but no frame arrived within the camera's timeout. Down: no RTSP session.",
			cameraStates(), query{stateExpr, "{{box}} {{camera}}"}).
			Span(24).Height(8),
		// Instant: a range query would evaluate the whole range at every step.
		statPanel("Unwatched camera-minutes", "Minutes in the dashboard's time range in which a chosen camera was unwatched, summed over the chosen cameras: two cameras unwatched for the same 10 minutes make 20. "+unwatchedReasons).
			WithTarget(prometheus.NewDataqueryBuilder().
				RefId("A").
				Datasource(prometheusDatasource).
				Expr("sum(avg_over_time(" + perCamera("camera:camera_unwatched:bool") + "[$__range])) * $__range_s / 60").
				Instant()).
			Unit("m").ColorMode(common.BigValueColorModeValue).Thresholds(thresholds("green", at(1, "orange"))).NoValue("0").
			Span(4).Height(8),
		unwatchedDays("Unwatched minutes per day", "Minutes of each day in which each camera was unwatched, over the last 7 days; a whole day is 1440. "+unwatchedReasons,
			query{unwatchedPerDay("camera:camera_unwatched:bool", ""), "{{box}} {{camera}}"}).
			Span(10).Height(8),
		unwatchedDays("Unwatched minutes per day, by reason", "Minutes of each day in which each camera was unwatched for each reason, over the last 7 days; cameras and reasons without any do not show. Reasons can hold at once (a frozen picture can also be too dark), so one camera's reasons can add up to more than its unwatched minutes. "+unwatchedReasons,
			query{unwatchedPerDay("camera:camera_unwatched_by_reason:bool", " > 0"), "{{box}} {{camera}} {{reason}}"}).
			Span(10).Height(8),
		infoTable("Streams", "What each camera sends.", perCamera("camera_info"),
			"site", "box", "camera", "codec", "width", "height", "transport").
			Span(24).Height(6),
	}
}

func logsPanel() cog.Builder[dashboard.Panel] {
	return logs.NewPanelBuilder().
		Title("Exporter logs").
		Description("The exporter's journal. Lines about one camera carry its name in the camera key; with All cameras the others show too.").
		Datasource(lokiDatasource).
		WithTarget(loki.NewDataqueryBuilder().
			RefId("A").
			Datasource(lokiDatasource).
			// Promtail (deploy/promtail) gives the exporter's lines job
			// camera_exporter, from its systemd unit or its container, and
			// the box's hostname as host.
			Expr(`{job="camera_exporter", host=~"$box"} | logfmt | camera=~"$camera"`)).
		ShowTime(true).
		WrapLogMessage(true).
		EnableLogDetails(true).
		SortOrder(common.LogsSortOrderDescending).
		DedupStrategy(common.LogsDedupStrategyNone).
		Span(24).Height(12)
}

func exporterPanels() []cog.Builder[dashboard.Panel] {
	return []cog.Builder[dashboard.Panel]{
		infoTable("Detector", "The detector each exporter runs: backend and target are what OpenCV really uses, requested_backend what the configuration asked for.",
			perBox("camera_detector_info"),
			"site", "box", "model", "layout", "input_size", "backend", "target", "requested_backend").
			Span(12).Height(6),
		infoTable("Build", "Versions of each exporter and of the libraries it links.", perBox("camera_exporter_build_info"),
			"site", "box", "version", "revision", "goversion", "opencv", "libavcodec").
			Span(12).Height(6),
		timeSeries("Collector scrape duration", "Time each collector took to answer a scrape.", "s",
			query{perBox("camera_scrape_collector_duration_seconds"), "{{box}} {{collector}}"}).
			Span(12).Height(8),
		stateTimeline("Collector success", "Whether each collector succeeded.", successes("OK", "Failed"),
			query{perBox("camera_scrape_collector_success"), "{{box}} {{collector}}"}).
			Span(6).Height(8),
		stateTimeline("Configuration", "Whether the last reload of the configuration succeeded; a failed one leaves the previous configuration in force.",
			successes("Loaded", "Reload failed"),
			query{perBox("camera_exporter_config_last_reload_successful"), "{{box}}"}).
			Span(6).Height(8),
	}
}

func cameraPanels() []cog.Builder[dashboard.Panel] {
	return []cog.Builder[dashboard.Panel]{
		statPanel("State", "Up: frames arrive. Stalled: the RTSP session is up but no frame arrived within the camera's timeout. Down: no RTSP session. The link opens the camera's page, with its picture.", query{stateExpr, ""}).
			Unit("none").Mappings(cameraStates()).ColorMode(common.BigValueColorModeBackground).
			Links(cameraPageLink("${camera}")).DataLinks(cameraPageLink("${__field.labels.camera}")).
			Span(4).Height(6),
		timeSeries("Frame rate", "Complete frames received per second, and the key frames among them.", "suffix: fps",
			query{rate("camera_frames_received_total"), "frames"},
			query{rate("camera_keyframes_received_total"), "key frames"}).
			Min(0).Span(10).Height(6),
		timeSeries("Frame age", "Time since the last complete frame. The camera is down once it exceeds the camera's timeout, 10 s unless configured otherwise.", "s",
			query{"time() - " + perCamera("camera_last_frame_timestamp_seconds"), "{{camera}}"}).
			Thresholds(thresholds("green", at(5, "orange"), at(10, "red"))).ThresholdsStyle(dashedThresholds()).
			Min(0).Span(10).Height(6),

		ratioSeries("Brightness", "Mean luma of the analyzed frame, from black to white.",
			query{perCamera("camera_frame_brightness_ratio"), "{{camera}}"}).
			Span(8).Height(7),
		ratioSeries("Contrast", "Standard deviation of luma. Near 0 the picture is flat: covered, fogged or blank.",
			query{perCamera("camera_frame_contrast_ratio"), "{{camera}}"}).
			Thresholds(thresholds("red", at(0.02, "green"))).ThresholdsStyle(dashedThresholds()).
			Span(8).Height(7),
		ratioSeries("Dark pixels", "Share of pixels below the camera's dark_threshold. Above 80% the camera sees little: night without light, or covered.",
			query{perCamera("camera_frame_dark_pixels_ratio"), "{{camera}}"}).
			Thresholds(thresholds("green", at(0.8, "red"))).ThresholdsStyle(dashedThresholds()).
			Span(8).Height(7),

		// Sharpness spans orders of magnitude between scenes, and blur
		// divides it: a logarithmic axis shows a fall as a step whatever
		// the scene.
		timeSeries("Sharpness", "Variance of the Laplacian of luma at 320 px wide: about 1e-5 for a flat picture, 1e-3 to 1e-2 for a sharp scene. It falls several times when the lens is dirty, fogged or out of focus, and at night with noise reduction; the CameraLensBlurred alert compares the last hour with the same hour on past days.", "sci",
			query{perCamera("camera_frame_sharpness"), "{{camera}}"}).
			ScaleDistribution(common.NewScaleDistributionConfigBuilder().Type(common.ScaleDistributionLog).Log(10)).
			Span(8).Height(7),
		timeSeries("Edge density", "Share of edge pixels (Canny). A covered lens or a flat picture drops it towards 0.", "percentunit",
			query{perCamera("camera_frame_edge_density_ratio"), "{{camera}}"}).
			Min(0).Span(8).Height(7),
		ratioSeries("Overexposed pixels", "Share of near-white pixels (luma at least 95%). Above 30% glare hides people: the sun or a floodlight in the view, or a wrong exposure.",
			query{perCamera("camera_frame_overexposed_pixels_ratio"), "{{camera}}"}).
			Thresholds(thresholds("green", at(0.3, "red"))).ThresholdsStyle(dashedThresholds()).
			Span(8).Height(7),

		ratioSeries("Colour", "Mean HSV saturation, 0 in infrared night mode, and the mean of each colour channel: a colour cast sets one channel apart.",
			query{perCamera("camera_frame_saturation_ratio"), "saturation"},
			query{perCamera("camera_frame_channel_mean_ratio"), "{{channel}}"}).
			OverrideByName("saturation", []dashboard.DynamicConfigValue{fixedColor("purple")}).
			OverrideByName("red", []dashboard.DynamicConfigValue{fixedColor("red")}).
			OverrideByName("green", []dashboard.DynamicConfigValue{fixedColor("green")}).
			OverrideByName("blue", []dashboard.DynamicConfigValue{fixedColor("blue")}).
			Span(12).Height(7),
		// The frozen state fills the panel's height in red while it lasts,
		// on an axis of its own.
		timeSeries("Frame difference", "How much the latest distinct analyzed frame differs from the most similar of the 8 before it (mean absolute luma difference over blocks, the tenth that changed most left out, so a clock overlay does not count): a live camera's sensor noise keeps it above 0.15%, a frozen picture that the camera keeps re-encoding stays below, a resent one is 0. Red: the stream repeats one picture that is not flat, a stuck camera pipeline.", "percentunit",
			query{perCamera("camera_frame_difference_ratio"), "difference"},
			query{frozenExpr, "frozen"}).
			Min(0).
			OverrideByQuery("B", []dashboard.DynamicConfigValue{
				fixedColor("red"),
				property("unit", "none"),
				property("min", 0),
				property("max", 1),
				property("mappings", frozenStates()),
				property("custom.axisPlacement", common.AxisPlacementHidden),
				property("custom.lineInterpolation", common.LineInterpolationStepAfter),
				property("custom.lineWidth", 0),
				property("custom.fillOpacity", 30),
			}).
			Span(12).Height(7),

		// Shift and zoom share the scale of the CameraMoved alert: a share
		// of the picture.
		timeSeries("View shift", "How far the view moved from the camera's reference view, as a share of the picture's width (x, positive: the scene moved right) and height (y, positive: the scene moved down), and its zoom (the scale less 1). Beyond 5% of the picture, or a zoom beyond 10%, for 5 minutes the CameraMoved alert fires. Cameras whose reference has no view have none.", "percentunit",
			query{perCamera("camera_view_shift_ratio"), "{{axis}}"},
			query{perCamera("camera_view_scale_ratio") + " - 1", "zoom"}).
			Thresholds(thresholds("red", at(-0.05, "green"), at(0.05, "red"))).ThresholdsStyle(dashedThresholds()).
			AxisSoftMin(-0.1).AxisSoftMax(0.1).Span(12).Height(7),
		ratioSeries("View match", "Share of the reference view's structure found in the picture where the view registers: about 0.9 to 1 for the reference's view, a little less while people and vehicles pass. Below 65% for 15 minutes the CameraObstructed alert fires: a covered or dirty lens, an obstacle, another scene.",
			query{perCamera("camera_view_match_ratio"), "{{camera}}"}).
			Thresholds(thresholds("red", at(0.65, "green"))).ThresholdsStyle(dashedThresholds()).
			Span(12).Height(7),

		bucketHeatmap("Brightness distribution",
			"How the brightness of the analyzed frames spreads in each time slot: day and night show as two bands, a camera that stays black as one at the bottom.",
			"camera_frame_brightness_distribution_ratio", "percentunit").
			Span(12).Height(8),
		timeSeries("Objects in frame", "Objects of each counted class in the latest analyzed frame.", "short",
			query{perCamera("camera_detected_objects"), "{{class}}"}).
			LineInterpolation(common.LineInterpolationStepAfter).
			Min(0).Span(12).Height(8),

		timeSeries("Drift", "Population stability index of each feature's distribution over the last hour against the camera's reference, and the combined score (bold): below 0.1 no drift, up to 0.25 moderate, above significant. Cameras without a reference have none.", "none",
			query{perCamera("camera_drift_score"), "{{feature}}"},
			query{perCamera("camera_drift_combined_score"), "combined"}).
			Thresholds(driftThresholds()).ThresholdsStyle(dashedThresholds()).
			OverrideByQuery("B", []dashboard.DynamicConfigValue{fixedColor("text"), property("custom.lineWidth", 3)}).
			Decimals(2).Min(0).Span(16).Height(8),
		statPanel("Reference", "The camera's reference profile: its age, the frames it was made of, and whether the exporter is still learning it (calibrating), when the drift scores are absent.",
			query{perCamera("camera_reference_age_seconds"), "age"},
			query{perCamera("camera_reference_frames"), "frames"},
			query{perCamera("camera_reference_calibrating"), "state"}).
			ColorMode(common.BigValueColorModeValue).Thresholds(thresholds("text")).
			OverrideByQuery("A", []dashboard.DynamicConfigValue{property("unit", "s")}).
			OverrideByQuery("B", []dashboard.DynamicConfigValue{property("unit", "short")}).
			OverrideByQuery("C", []dashboard.DynamicConfigValue{property("mappings", valueTexts(
				[3]string{"1", "Calibrating", "orange"}, [3]string{"0", "Ready", "green"}))}).
			Unit("none").Span(8).Height(8),

		timeSeries("Detections", "Objects of each counted class found per minute, over all analyzed frames.", "cpm",
			query{"60 * sum by (class) (" + rate("camera_detected_objects_total") + ")", "{{class}}"}).
			Min(0).Span(12).Height(8),
		ratioSeries("Frames without detections", "Share of analyzed frames in which the detector found no object of a counted class. A rise on a busy site points at the detector or the picture, not the site.",
			query{rate("camera_frames_without_detections_total") + " / " + rate("camera_analyzed_frames_total"), "{{camera}}"}).
			Span(12).Height(8),

		timeSeries("Inference latency", "Time the detector spent on a frame, as percentiles.", "s",
			query{"histogram_quantile(0.5, sum by (le) (" + rate("camera_inference_duration_seconds_bucket") + "))", "p50"},
			query{"histogram_quantile(0.95, sum by (le) (" + rate("camera_inference_duration_seconds_bucket") + "))", "p95"},
			query{"histogram_quantile(0.99, sum by (le) (" + rate("camera_inference_duration_seconds_bucket") + "))", "p99"}).
			Min(0).Span(12).Height(8),
		bucketHeatmap("Inference duration", "Frames by the time the detector spent on them.", "camera_inference_duration_seconds", "s").
			Span(12).Height(8),

		bucketHeatmap("Detection confidence", "Counted objects by the detector's confidence.", "camera_detection_confidence", "percentunit").
			Span(12).Height(8),
		timeSeries("Bitrate", "RTP payload received.", "bps",
			query{"8 * " + rate("camera_received_bytes_total"), "{{camera}}"}).
			Min(0).Span(12).Height(8),

		countBars("Reconnects", "Attempts to re-establish an RTSP session, by why the session before ended.", "camera_reconnects_total", "{{camera}} {{reason}}").
			Span(6).Height(7),
		countBars("Decode errors", "Frames that could not be depacketized or decoded.", "camera_decode_errors_total", "{{camera}}").
			Span(6).Height(7),
		countBars("RTP packets lost", "RTP packets lost on the way from the camera.", "camera_rtp_packets_lost_total", "{{camera}}").
			Span(6).Height(7),
		stateTimeline("Analysis", "Whether the latest frame was decoded, analyzed and, if the camera detects, run through the detector within the scrape's deadline.",
			successes("OK", "Failed"), query{perCamera("camera_frame_analysis_success"), "{{camera}}"}).
			Span(6).Height(7),
	}
}
