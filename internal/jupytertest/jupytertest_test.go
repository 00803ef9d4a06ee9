package jupytertest

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// The server serves the notebook with its one cell and no output, starts
// a kernel, and leaves no kernel behind when it stops.
func TestStartServesTheNotebookAndStopLeavesNoKernel(t *testing.T) {
	s := Start(t)
	t.Logf("Jupyter Notebook answered after %s", s.Started)
	api := func(method, path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL+path, nil)
		req.Header.Set("Authorization", "token "+s.Token)
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := api("GET", "/api/contents/"+NotebookPath)
	var nb struct {
		Content struct {
			Cells []struct {
				CellType string `json:"cell_type"`
				Source   string
				Outputs  []any
			}
		}
	}
	err := json.NewDecoder(resp.Body).Decode(&nb)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(nb.Content.Cells) != 1 || nb.Content.Cells[0].Source != Cell || len(nb.Content.Cells[0].Outputs) != 0 {
		t.Fatalf("the notebook: %d %v %+v", resp.StatusCode, err, nb)
	}
	req, _ := http.NewRequest("GET", s.URL+"/api/contents/"+NotebookPath, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("without the token: %v %v", resp.StatusCode, err)
	}

	if resp := api("POST", "/api/kernels"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("starting a kernel: %d", resp.StatusCode)
	}
	kernels := s.Kernels()
	if len(kernels) == 0 {
		t.Fatalf("no kernel process after starting a kernel:\n%s", s.Log())
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, k := range kernels {
		if !gone(k, 0) {
			t.Errorf("kernel %d alive after Stop", k)
		}
	}
}
