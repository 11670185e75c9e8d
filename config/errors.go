package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// source is the name of the configuration file in errors; empty for Parse.
type source string

// errorf returns an error positioned like a compiler's, "exporter.yml:12: ...".
// A zero line is unknown.
func (s source) errorf(line int, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	switch {
	case s != "" && line > 0:
		return fmt.Errorf("%s:%d: %s", s, line, msg)
	case s != "":
		return fmt.Errorf("%s: %s", s, msg)
	case line > 0:
		return fmt.Errorf("line %d: %s", line, msg)
	}
	return errors.New(msg)
}

var (
	yamlLineMessage    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownField       = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	unmarshalableValue = regexp.MustCompile("^(cannot unmarshal \\S+) `.*`")

	// sectionNames are what the types named in yaml.v3's errors are in the file.
	sectionNames = map[string]string{
		reflect.TypeFor[Config]().String():        "config",
		reflect.TypeFor[CameraOptions]().String(): "defaults",
		reflect.TypeFor[Camera]().String():        "camera",
		reflect.TypeFor[Detector]().String():      "detector",
		reflect.TypeFor[DetectOptions]().String(): "detect",
		reflect.TypeFor[Module]().String():        "module",
		reflect.TypeFor[Auth]().String():          "auth",
		reflect.TypeFor[Region]().String():        "frozen_overlay",
	}
)

// yamlError turns an error of yaml.v3, which may hold several messages, into
// errors positioned like the validation errors.
func (s source) yamlError(err error) error {
	var typeErr *yaml.TypeError
	if !errors.As(err, &typeErr) {
		return s.yamlMessage(err.Error())
	}
	errs := make([]error, len(typeErr.Errors))
	for i, msg := range typeErr.Errors {
		errs[i] = s.yamlMessage(msg)
	}
	return errors.Join(errs...)
}

// yamlMessage turns a message of yaml.v3, "line 7: field pasword not found
// in type config.Camera", into an error like `exporter.yml:7: field
// "pasword" not found in camera`.
func (s source) yamlMessage(msg string) error {
	m := yamlLineMessage.FindStringSubmatch(msg)
	if m == nil {
		return s.errorf(0, "%s", strings.TrimPrefix(msg, "yaml: "))
	}
	line, _ := strconv.Atoi(m[1])
	msg = m[2]
	if f := unknownField.FindStringSubmatch(msg); f != nil {
		return s.errorf(line, "field %q not found in %s", f[1], sectionNames[f[2]])
	}
	// yaml.v3 quotes the value that does not fit, which may be a password
	// in the wrong place.
	return s.errorf(line, "%s", unmarshalableValue.ReplaceAllString(msg, "$1"))
}

// reporter collects the validation errors of the defaults block or of a
// camera, each positioned at the field it is about.
type reporter struct {
	src     source
	pos     position
	subject string // "defaults" or `camera "gate-north"`
	errs    []error
	// progress records the file being read; nil outside a SafeConfig.
	progress *loadProgress
}

// errorf adds an error about field; an empty field is the whole entry.
func (r *reporter) errorf(field, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.errs = append(r.errs, r.src.errorf(r.lineOf(field), "%s: %s", r.subject, msg))
}

// lineOf returns the line of field, or of the entry where the field is not set.
func (r *reporter) lineOf(field string) int {
	if line, ok := r.pos.fields[field]; ok {
		return line
	}
	return r.pos.line
}

// has reports whether the entry sets field.
func (r *reporter) has(field string) bool {
	_, ok := r.pos.fields[field]
	return ok
}
